//! Request shapes for the OpenAPI document, as field tables: handlers read the exact
//! strings Cafe24, KOMOJU and the mall front send ([`crate::cafe24::Fields`], needed for
//! the hash checks), so a request is described by the fields the use case reads, with
//! the rule each must meet (pattern, length, allowed values), and built into a JSON
//! schema here. Unknown fields are allowed in every request (Cafe24's are kept, never an
//! error).
//!
//! [`request_schema!`](crate::request_schema) names a table as a schema component
//! (`CheckoutRequest`, …) for `request_body(content(...))`.

use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

/// One request field as the parser reads it.
pub struct Field {
    /// The field's name on the wire (`partner_id`).
    pub name: &'static str,
    /// Whether the use case refuses a request without it (a reply: whether it is always
    /// there).
    pub required: bool,
    /// Whether an empty value is refused (`minLength` 1); every required request field.
    pub non_empty: bool,
    /// What it is, for people.
    pub description: &'static str,
    /// The rule the value meets (an ECMA-262 regular expression), when there is one.
    pub pattern: Option<&'static str>,
    /// Its longest accepted length, in characters.
    pub max_length: Option<usize>,
    /// The only accepted values, when the field is an enumeration.
    pub values: &'static [&'static str],
    /// An example value.
    pub example: Option<&'static str>,
}

impl Field {
    /// A required string field.
    pub const fn required(name: &'static str, description: &'static str) -> Field {
        Field {
            name,
            required: true,
            non_empty: true,
            description,
            pattern: None,
            max_length: None,
            values: &[],
            example: None,
        }
    }

    /// An optional string field.
    pub const fn optional(name: &'static str, description: &'static str) -> Field {
        Field {
            required: false,
            non_empty: false,
            ..Field::required(name, description)
        }
    }

    /// A string field always there, possibly empty (a reply's).
    pub const fn present(name: &'static str, description: &'static str) -> Field {
        Field {
            non_empty: false,
            ..Field::required(name, description)
        }
    }

    /// The field with `pattern`.
    pub const fn pattern(self, pattern: &'static str) -> Field {
        Field {
            pattern: Some(pattern),
            ..self
        }
    }

    /// The field at most `max` characters long.
    pub const fn max_length(self, max: usize) -> Field {
        Field {
            max_length: Some(max),
            ..self
        }
    }

    /// The field one of `values`.
    pub const fn one_of(self, values: &'static [&'static str]) -> Field {
        Field { values, ..self }
    }

    /// The field with an example.
    pub const fn example(self, example: &'static str) -> Field {
        Field {
            example: Some(example),
            ..self
        }
    }

    fn schema(&self) -> Schema {
        let mut schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(self.description))
            .pattern(self.pattern)
            .max_length(self.max_length)
            .min_length(self.non_empty.then_some(1));
        if !self.values.is_empty() {
            schema = schema.enum_values(Some(self.values.iter().copied()));
        }
        if let Some(example) = self.example {
            schema = schema.examples([example]);
        }
        Schema::Object(schema.build())
    }
}

/// The JSON schema of a request with `fields`: an object, the required ones required,
/// any other field allowed (kept, never an error) when its name is one a form can carry
/// once (ASCII word characters: names that differ only in bytes a form decodes alike are
/// refused as repeated) and its value a string without NUL (refused by the parser).
pub fn object(description: &str, fields: &[Field]) -> RefOr<Schema> {
    let other_name = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[A-Za-z0-9_.-]{1,64}$"));
    let other_value = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[^\\x00]*$"))
        .max_length(Some(2000));
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(description))
        .property_names(Some(other_name))
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(Schema::Object(
            other_value.build(),
        )))));
    for field in fields {
        object = object.property(field.name, field.schema());
        if field.required {
            object = object.required(field.name);
        }
    }
    RefOr::T(Schema::Object(object.build()))
}

/// `request_schema!(Name, "description", TABLE)`: a schema component `Name` built from
/// the field table `TABLE` ([`object`]), for `request_body(content((Name = …)))`. `Name`
/// is an uninhabited type: it names the schema, nothing is parsed into it.
#[macro_export]
macro_rules! request_schema {
    ($(#[$doc:meta])* $name:ident, $description:expr, $fields:expr) => {
        $(#[$doc])*
        pub enum $name {}

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::routes::fields::object($description, $fields)
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

/// Cafe24's `partner_id`: `{mall_id}:{shop_no}:{public_ref}`.
/// (`crate::cafe24::partner_id`: `mall_id` 1–50 of `[a-z0-9_-]`, `shop_no` 1–9999 without
/// leading zeros, `public_ref` 1–100 of `[A-Za-z0-9_.-]`).
pub const PARTNER_ID: &str = "^[a-z0-9_-]{1,50}:[1-9][0-9]{0,3}:[A-Za-z0-9_.-]{1,100}$";
/// A shop number, 1–9999 without leading zeros.
pub const SHOP_NO: &str = "^[1-9][0-9]{0,3}$";
/// Cafe24's `order_id` (the parser takes 1–100 characters, none a control character;
/// the document asks for the ASCII ones Cafe24 sends).
pub const ORDER_ID: &str = "^[A-Za-z0-9_-]{1,100}$";
/// A positive decimal amount in Cafe24's format (`3065.00`).
pub const AMOUNT: &str = "^[0-9]{1,12}(\\.[0-9]{1,2})?$";
/// An ISO 4217 currency code.
pub const CURRENCY: &str = "^[A-Z]{3}$";
/// An absolute http(s) URL.
pub const URL: &str = "^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\\s]*)?$";
/// A base64 HMAC-SHA256 (Cafe24's `hash_data`, the reservation's `hmac`).
pub const BASE64_MAC: &str = "^[A-Za-z0-9+/]{43}=$";
/// A signed order key (HS256 JWT).
pub const ORDER_KEY: &str = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$";

// The order page's copy buttons (the settings site's only script): a button with
// data-copy="ID" copies the value of the read-only field ID. Without the script the
// field can still be selected and copied by hand.
document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-copy]");
  if (!button) return;
  var field = document.getElementById(button.getAttribute("data-copy"));
  if (!field) return;
  field.select();
  if (navigator.clipboard && navigator.clipboard.writeText) {
    navigator.clipboard.writeText(field.value);
  } else {
    document.execCommand("copy");
  }
});

#!/usr/bin/env bash
# Builds the cargo-fuzz targets once and runs each for SECONDS seconds.
#
#   fuzz/run.sh SECONDS [TARGET...]
#
# Every target starts from its hand-written seeds (fuzz/seeds/TARGET, committed) and
# keeps what it finds in fuzz/corpus/TARGET (ignored by git), so later runs go on from
# there. Crash inputs land in fuzz/artifacts/TARGET/, with the target's log beside
# them (fuzz.log). Prints, per target, the executions, the corpus size and whether it
# crashed; exits 1 if any target crashed (or timed out, or ran out of memory).
#
# Environment: FUZZ_JOBS (targets run at once, default 1), FUZZ_NICE (niceness of the
# fuzzing processes, default 10), CARGO_BUILD_JOBS (for the build, as cargo reads it).
# Only the stable toolchain is needed: RUSTC_BOOTSTRAP=1 lets it take cargo-fuzz's
# nightly flags. Not run by CI; see docs/testing.md.
set -euo pipefail
cd "$(dirname "$0")"

if [ $# -lt 1 ] || ! [[ "$1" =~ ^[0-9]+$ ]] || [ "$1" -lt 1 ]; then
  echo "usage: fuzz/run.sh SECONDS [TARGET...]" >&2
  exit 2
fi
seconds="$1"
shift
all_targets=(fields_form fields_json money callback_url partner_id komoju_webhook)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi
jobs="${FUZZ_JOBS:-1}"
niceness="${FUZZ_NICE:-10}"

export RUSTC_BOOTSTRAP=1
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
  exit 2
fi

# No sanitizer: the code under test is safe Rust, and the bundled C libraries (OpenSSL,
# libpq, SQLite) are linked in but never reached by these targets; ASan would only halve
# the speed. -O with -a: optimized, with debug assertions and overflow checks.
build_flags=(-O -a --sanitizer none)
echo "== building fuzz targets (cargo fuzz build ${build_flags[*]})"
cargo fuzz build "${build_flags[@]}"
bin="target/x86_64-unknown-linux-gnu/release"

max_len() {
  case "$1" in
    fields_form | fields_json) echo 9000 ;; # values up to and past MAX_FIELD_BYTES (4096)
    callback_url) echo 4200 ;;              # past the 2048-byte URL limit
    partner_id) echo 256 ;;                 # past the 200-byte limit
    money) echo 64 ;;                       # 9 header bytes + past the 32-byte limit
    *) echo 4096 ;;
  esac
}

dict_for() {
  case "$1" in
    fields_form | fields_json) echo dicts/fields.dict ;;
    callback_url) echo dicts/callback_url.dict ;;
    komoju_webhook) echo dicts/komoju_webhook.dict ;;
    *) echo "" ;;
  esac
}

run_target() {
  local t="$1"
  local out="artifacts/$t"
  mkdir -p "corpus/$t" "$out"
  local args=(
    "-max_total_time=$seconds"
    "-max_len=$(max_len "$t")"
    -timeout=10
    -rss_limit_mb=2048
    -use_value_profile=1
    -print_final_stats=1
    "-artifact_prefix=$out/"
  )
  local dict
  dict="$(dict_for "$t")"
  if [ -n "$dict" ]; then args+=("-dict=$dict"); fi
  local rc=0 start
  start="$(date +%s)"
  nice -n "$niceness" "$bin/$t" "${args[@]}" "corpus/$t" "seeds/$t" >"$out/fuzz.log" 2>&1 || rc=$?
  echo "$(($(date +%s) - start))" >"$out/seconds"
  echo "$rc" >"$out/exit_code"
}

summary() {
  local t="$1"
  local log="artifacts/$t/fuzz.log"
  local rc secs execs corp cov files verdict
  rc="$(cat "artifacts/$t/exit_code" 2>/dev/null || echo "?")"
  secs="$(cat "artifacts/$t/seconds" 2>/dev/null || echo "?")"
  files="$(find "corpus/$t" -type f | wc -l)"
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1 || true)"
  # The last status line: "#N  DONE  cov: C ft: F corp: U/Sb ..."
  corp="$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" | tail -n 1 | sed 's/corp: //' || true)"
  cov="$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1 || true)"
  if [ "$rc" = 0 ]; then
    verdict="no crash"
  else
    verdict="CRASH (exit $rc): $(grep -o 'Test unit written to .*' "$log" | sed 's/Test unit written to //' | tr '\n' ' ' || true)"
  fi
  printf '%-15s %5ss  executions %-11s corpus %-13s (%s files) %-21s %s\n' \
    "$t" "$secs" "${execs:-?}" "${corp:-?}" "$files" "${cov:-?}" "$verdict"
}

echo "== fuzzing ${targets[*]}: ${seconds}s each, $jobs at a time ($(date -u '+%Y-%m-%d %H:%M UTC'))"
running=0
for t in "${targets[@]}"; do
  if [ ! -x "$bin/$t" ]; then
    echo "unknown target: $t" >&2
    exit 2
  fi
  rm -f "artifacts/$t/exit_code" "artifacts/$t/seconds"
  run_target "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true

echo "== results ($(date -u '+%Y-%m-%d %H:%M UTC'))"
failed=0
for t in "${targets[@]}"; do
  summary "$t"
  if [ "$(cat "artifacts/$t/exit_code" 2>/dev/null || echo 1)" != 0 ]; then
    failed=1
    echo "   --- $t: the panic (artifacts/$t/fuzz.log):"
    grep -m 1 -A 3 "panicked at" "artifacts/$t/fuzz.log" | cut -c 1-300 | sed 's/^/   /' || true
  fi
done
exit "$failed"

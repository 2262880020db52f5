#!/usr/bin/env bash
# The long crash loop: SIGKILL the real server N times (default 100) at varying moments while
# 8 volunteers submit, auditing the store after every kill (every acknowledged result present,
# every unit present, nothing credited or decided twice), then finishing the job. CI runs the
# same test with 3 cycles. Loopback only; bounded in time; stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
export CYCLEPOOL_CRASH_CYCLES="${1:-100}"
exec cargo test --release -p cyclepool-server --test crash -- --nocapture

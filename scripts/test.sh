#!/usr/bin/env bash
# The whole default test suite, from a fresh clone on a fresh Debian 12 machine:
# installs the dependencies, builds (release preset, build/), starts a throwaway PostgreSQL and
# runs every test except the `bench` and `long` labels; then the same on the asan-ubsan preset;
# then each libFuzzer target for 30 s. CI (.ci/run) runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake --preset release
cmake --build --preset release -j "$(nproc)"

# -LE excludes the benchmark and long-soak labels; --no-tests=error turns "ran nothing" into a failure.
bash scripts/pg_tmp.sh -- \
  ctest --test-dir build --output-on-failure --no-tests=error -j 2 -LE '^(bench|long)$' "$@"

# Then the same suite on the asan-ubsan preset (build-asan/), minus three soaks (the 1000-order
# world, the kill -9 loop and SIGTERM rounds, the API fault storms with a 2-minute outage): their
# simulators run at hours per second and outpace a sanitized daemon, and their minutes of waiting
# would push the run past half an hour while exercising code the other e2e tests run sanitized.
# So is the replicas polling-split test: it judges two daemons' GETs over a few seconds, and
# sanitized daemons fetch too few orders twice in that window for the judgement to mean anything.
# MAILTRAIL_TEST_ASAN=0 skips this pass (a quicker local run; CI always runs it).
if [ "${MAILTRAIL_TEST_ASAN:-1}" != "0" ]; then
  cmake --preset asan-ubsan
  cmake --build --preset asan-ubsan -j "$(nproc)"
  LSAN_OPTIONS="suppressions=$PWD/sanitizers/lsan.supp" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    bash scripts/pg_tmp.sh -- \
    ctest --test-dir build-asan --output-on-failure --no-tests=error -j 2 -LE '^(bench|long)$' \
      -E '^((WorldE2eTest|CrashE2eTest|ApiFaultsE2eTest)\.|ReplicasE2eTest\.TwoReplicasSplit)' "$@"
fi

# Finally every libFuzzer target for MAILTRAIL_TEST_FUZZ_SECONDS (default 30) each, after replaying
# fuzz/regressions/. MAILTRAIL_TEST_FUZZ_SECONDS=0 only replays the seeds and regressions.
bash scripts/fuzz "${MAILTRAIL_TEST_FUZZ_SECONDS:-30}"

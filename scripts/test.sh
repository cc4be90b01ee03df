#!/usr/bin/env bash
# Sets up (apt packages) and runs the whole test suite: engine parity with Keras, import,
# inputs, recorder, queries, plots and CLI tests against the built binary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --build-tests
swift test --skip-build "$@"

#!/usr/bin/env bash
# Compiles the C kernels (Sources/CKernels, Sources/CSummaries, Sources/CDigest, Sources/CMalloc) for aarch64 with clang, to show that no x86 intrinsic
# is compiled there (immintrin.h and every AVX function are behind x86 guards). Uses this
# machine's glibc headers with an empty gnu/stubs-32.h, which is enough for a compile check;
# nothing is linked or run.   scripts/check_aarch64_c.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang >/dev/null || { echo "check_aarch64_c: clang not found" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/inc/gnu" && : > "$work/inc/gnu/stubs-32.h"
for f in Sources/CKernels/*.c Sources/CSummaries/*.c Sources/CDigest/*.c Sources/CMalloc/*.c; do
    clang --target=aarch64-linux-gnu -O2 -Wall -Wextra -Werror -c -o "$work/k.o" -ISources/CKernels/include -ISources/CSummaries/include -ISources/CDigest/include -ISources/CMalloc/include \
        -idirafter "$work/inc" -idirafter /usr/include/x86_64-linux-gnu "$f"
    file "$work/k.o" | grep -q "ARM aarch64" || { echo "check_aarch64_c: $f did not compile for aarch64" >&2; exit 1; }
    echo "$f: aarch64 object, $(nm "$work/k.o" | grep -c ' T ') functions"
done

# Shared by the benchmark scripts (source it): timing helpers.

# Median wall time in seconds of N runs of a command (output discarded): median N CMD ARGS...
median() {
    local n=$1; shift
    local times=()
    for _ in $(seq "$n"); do
        local s e
        s=$(date +%s.%N)
        "$@" >/dev/null
        e=$(date +%s.%N)
        times+=("$(awk -v a="$s" -v b="$e" 'BEGIN { printf "%.4f", b - a }')")
    done
    printf '%s\n' "${times[@]}" | sort -g | awk '{ t[NR] = $1 } END { printf "%.3f", (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2 }'
}

# Headless Chromium for the browser test of report.html; sourced by .ci/run (bash).
#
#   chromium_ensure  installs Debian's chromium when no chromium is on PATH. On failure it prints
#                    one line and returns 1: the browser test then skips with one line of its own.

chromium_ensure() {
    local log
    if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
        return 0
    fi
    log=$(mktemp)
    echo "Chromium: not found: installing Debian's chromium"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >"$log" 2>&1 ||
        { apt-get update -qq >>"$log" 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >>"$log" 2>&1; }; }; then
        echo "Chromium: apt-get install chromium failed ($(tail -n 1 "$log")); the report's browser test will skip"
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
}

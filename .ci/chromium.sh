# Headless Chromium for the browser test of report.html; sourced by .ci/run (bash).
#
#   chromium_ensure  installs Debian's chromium when no chromium is on PATH. On failure it prints
#                    one line and returns 1: the browser test then skips with one line of its own.

source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

chromium_ensure() {
    if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
        return 0
    fi
    echo "Chromium: not found: installing Debian's chromium"
    if ! apt_install chromium --no-install-recommends; then
        echo "Chromium: apt-get install chromium failed ($APT_WHY); the report's browser test will skip"
        return 1
    fi
}

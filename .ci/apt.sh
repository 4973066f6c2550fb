# Installing one of Debian's packages for CI; sourced by .ci/postgres.sh and .ci/chromium.sh (bash).
#
#   apt_install PACKAGE [APT-GET OPTIONS...]
#                  installs PACKAGE quietly, running `apt-get update` once and retrying when the
#                  first try fails (a fresh machine's package lists may be missing or stale). On
#                  failure it returns 1 with the last line of apt's output in APT_WHY.

APT_WHY=""

apt_install() {
    local package=$1 log
    shift
    log=$(mktemp)
    if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" "$package" >"$log" 2>&1 ||
        { apt-get update -qq >>"$log" 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" "$package" >>"$log" 2>&1; }; }; then
        APT_WHY=$(tail -n 1 "$log")
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
}

# The labgrid tests (tests/test_labgrid.py): labgrid 26 in its OWN virtualenv, outside the
# test venv. labgrid depends on pyserial-labgrid, which installs the same `serial` module as
# the harness's pyserial; kept apart, neither can delete the other's files. The harness
# reaches labgrid only through that venv's interpreter (harness/devices/labgrid_bridge.py)
# and the tests start its labgrid-coordinator, -exporter and -client from there.
# Sourced by .ci/run as root; idempotent. EDGE_HARNESS_LABGRID_VENV moves it (the tests
# read the same variable). Needs the SSH test boards of ssh.sh.
_lgvenv="${EDGE_HARNESS_LABGRID_VENV:-/opt/edge-harness/labgrid}"
if [ ! -x "$_lgvenv/bin/labgrid-coordinator" ] || ! "$_lgvenv/bin/python" -I -c "import labgrid.remote.client" 2>/dev/null; then
    rm -rf "$_lgvenv"
    mkdir -p "$(dirname "$_lgvenv")"
    /usr/bin/python3 -m venv "$_lgvenv"
    "$_lgvenv/bin/pip" install -q 'labgrid>=25'
fi
chmod -R a+rX "$_lgvenv"
unset _lgvenv

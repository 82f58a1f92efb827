# Shared by the test and demo scripts (sourced, not run). The caller sets `tmp` (step logs).
#   pass NAME / fail NAME     count and print a step result
#   run NAME CMD...           one step in a subshell with errexit on; output shown on failure
#   stop_if_failed [NAME]     after a step later steps need: when one failed, the summary line
#                             ("NAME: " before it too, with NAME) and exit 1
#   matrix_cell M ROW COLUMN BEFORE EXPECT SUCCESS
#                             a cell of the result matrix M (the caller declares the array M_rows and
#                             the associative array M_cells) after its case ran: FAIL when `failed`
#                             grew past BEFORE, else ok when EXPECT is SUCCESS, else refused; ROW joins
#                             M_rows at its first cell
#   matrix_print M TITLE COLUMN...
#                             the matrix: a heading, then a line per row, "-" for a cell not run
#   start_swtpm DIR LOG       swtpm on a free port pair (server P, control P+1), state in DIR;
#                             sets swtpm_pid and swtpm_port once the control port answers;
#                             on failure prints the log, stops the process and returns 1

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }

run() {
    local name="$1" rc
    shift
    (
        set -e
        "$@"
    ) >"$tmp/$name.log" 2>&1
    rc=$?
    if [ "$rc" -eq 0 ]; then
        pass "$name"
    else
        fail "$name"
        sed 's/^/    /' "$tmp/$name.log"
    fi
}

stop_if_failed() {
    if [ "$failed" -ne 0 ]; then
        [ -z "${1:-}" ] || echo "$1: $passed passed, $failed failed"
        echo "$passed passed, $failed failed"
        exit 1
    fi
}

matrix_cell() {
    local -n matrix_rows="$1_rows" matrix_cells="$1_cells"
    local row="$2" column="$3"
    [[ " ${matrix_rows[*]} " == *" $row "* ]] || matrix_rows+=("$row")
    if [ "$failed" -ne "$4" ]; then
        matrix_cells[$row,$column]=FAIL
    elif [ "$5" = "$6" ]; then
        matrix_cells[$row,$column]=ok
    else
        matrix_cells[$row,$column]=refused
    fi
}

matrix_print() {
    local -n matrix_rows="$1_rows" matrix_cells="$1_cells"
    local title="$2" row column
    shift 2
    printf '%-28s' "$title"
    printf ' %-9s' "$@"
    echo
    for row in "${matrix_rows[@]}"; do
        printf '%-28s' "$row"
        for column in "$@"; do printf ' %-9s' "${matrix_cells[$row,$column]:--}"; done
        echo
    done
}

start_swtpm() {
    local dir="$1" log="$2"
    swtpm_port=$(python3 -c 'import socket
while True:
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1)); print(p); break
    except OSError: pass')
    mkdir -p "$dir"
    swtpm socket --tpm2 --server "type=tcp,port=$swtpm_port,bindaddr=127.0.0.1" \
        --ctrl "type=tcp,port=$((swtpm_port + 1)),bindaddr=127.0.0.1" --tpmstate "dir=$dir" \
        --flags not-need-init,startup-clear >"$log" 2>&1 &
    swtpm_pid=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$((swtpm_port + 1))") 2>/dev/null && return 0
        kill -0 "$swtpm_pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$log"
    kill "$swtpm_pid" 2>/dev/null
    wait "$swtpm_pid" 2>/dev/null
    return 1
}

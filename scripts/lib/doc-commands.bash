# Shared by scripts/check-readme and scripts/check-deployment: finds the
# commands a Markdown file tells the reader to run, and prints one verdict
# line per command. Sourced, not run.
#
# The rule: every fenced block whose info string is `sh`, `bash` or `shell`
# is run, command by command, exactly as written, unless the last non-blank
# line before its fence is a marker with a reason:
#
#   <!-- not run by scripts/check-readme: REASON -->
#   <!-- not run by scripts/check-deployment as written: REASON -->
#
# (the second where the check runs a stand-in for the block instead).
#
# A command is a non-blank, non-comment line of such a block, together with
# the lines its trailing backslashes continue onto.

# doc_commands FILE: fills DOC_LINE/DOC_TEXT (the commands: line number and
# verbatim text) and SKIP_LINE/SKIP_REASON (the marked blocks).
doc_commands() {
    local file=$1 n=0 line fence='^[[:space:]]*```' in_block=0 run=0
    local marker='' cmd='' start=0
    local marker_re='^[[:space:]]*<!-- not run by scripts/check-[a-z-]+( as written)?: (.+) -->[[:space:]]*$'
    DOC_LINE=() DOC_TEXT=() SKIP_LINE=() SKIP_REASON=()
    while IFS= read -r line || [ -n "$line" ]; do
        n=$((n + 1))
        if [ "$in_block" = 0 ]; then
            if [[ $line =~ $fence([A-Za-z0-9_+-]*) ]]; then
                in_block=1 run=0
                case ${BASH_REMATCH[1]} in
                sh | bash | shell)
                    if [ -n "$marker" ]; then
                        SKIP_LINE+=("$n") SKIP_REASON+=("$marker")
                    else
                        run=1
                    fi
                    ;;
                esac
                marker=''
            elif [[ $line =~ $marker_re ]]; then
                marker=${BASH_REMATCH[2]}
            elif [[ $line =~ [^[:space:]] ]]; then
                marker=''
            fi
            continue
        fi
        if [[ $line =~ $fence ]]; then
            if [ -n "$cmd" ]; then
                echo "$file:$start: the block ends inside a command (trailing backslash)" >&2
                return 1
            fi
            in_block=0
            continue
        fi
        [ "$run" = 1 ] || continue
        if [ -z "$cmd" ]; then
            [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
            start=$n
        fi
        cmd+=$line
        if [[ $line == *\\ ]]; then
            cmd+=$'\n'
        else
            DOC_LINE+=("$start") DOC_TEXT+=("$cmd")
            cmd=''
        fi
    done <"$file"
    if [ "$in_block" = 1 ]; then
        echo "$file: a fenced block is not closed" >&2
        return 1
    fi
}

# one_line TEXT: the command on one line, continuations joined, without a
# trailing comment (for display and for recognising what a command is).
one_line() {
    local text=${1//$'\\\n'/ }
    text=$(sed -E 's/[[:space:]]+#[^"'\'']*$//; s/[[:space:]]+/ /g; s/^ //; s/ $//' <<<"$text")
    printf '%s' "$text"
}

# verdict WORD SECONDS WHERE TEXT [NOTE]: one aligned result line.
verdict() {
    local word=$1 seconds=$2 where=$3 text=$4 note=${5:-}
    [ "$seconds" = - ] || seconds+=s
    printf '  %-5s %7s  %-22s %s\n' "$word" "$seconds" "$where" "$text"
    [ -z "$note" ] || note "$note"
}

# note TEXT: one more line under the last verdict.
note() {
    printf '  %-5s %7s  %-22s -> %s\n' '' '' '' "$1"
}

# Tenths of a second since START_NS (set with `START_NS=$(date +%s%N)`).
since() {
    local ns=$(($(date +%s%N) - $1))
    printf '%d.%d' $((ns / 1000000000)) $((ns / 100000000 % 10))
}

# show_log FILE: the end of a command's output, indented, after a failure.
show_log() {
    [ -s "$1" ] || return 0
    echo "        --- last lines of its output ($1) ---"
    tail -n "${2:-25}" "$1" | sed 's/^/        | /'
}

# timeout_note STATUS SECONDS: why a command run under `timeout` failed.
timeout_note() {
    case $1 in
    124 | 137) echo "did not finish within $2 s (timeout)" ;;
    *) echo "exit status $1" ;;
    esac
}

# loadgen_report LOG: checks sstp-loadgen's summary line ("sessions
# attempted N established N failed 0 dropped 0 ... close timeouts 0") and
# prints it in short; status 1 unless every session was established, none
# failed or was dropped, and every one closed in time.
loadgen_report() {
    local line
    line=$(grep -E '^sessions +attempted' "$1" | tail -n 1) || {
        echo "no 'sessions attempted ...' summary line in its output"
        return 1
    }
    local re='attempted ([0-9]+) +established ([0-9]+) +failed ([0-9]+) +dropped ([0-9]+).*close timeouts ([0-9]+)'
    if ! [[ $line =~ $re ]]; then
        echo "cannot read its summary: $line"
        return 1
    fi
    local attempted=${BASH_REMATCH[1]} established=${BASH_REMATCH[2]}
    local failed=${BASH_REMATCH[3]} dropped=${BASH_REMATCH[4]} timeouts=${BASH_REMATCH[5]}
    echo "$established of $attempted sessions established, $failed failed, $dropped dropped, $timeouts close timeouts"
    [ "$attempted" -gt 0 ] && [ "$established" = "$attempted" ] &&
        [ "$failed" = 0 ] && [ "$dropped" = 0 ] && [ "$timeouts" = 0 ]
}

# wait_exit PID SECONDS: waits for a child to exit; its status, or 124 if
# it is still running after SECONDS.
wait_exit() {
    local pid=$1 deadline=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || return 124
        sleep 0.1
    done
    wait "$pid"
}

# wait_listening PID SECONDS CMD...: waits until CMD (ss listing listening
# TCP sockets, e.g. inside a namespace) shows one, while PID is alive.
# Status 1 if PID exited first, 124 on timeout.
wait_listening() {
    local pid=$1 deadline=$((SECONDS + $2))
    shift 2
    until "$@" 2>/dev/null | grep -q LISTEN; do
        kill -0 "$pid" 2>/dev/null || return 1
        [ "$SECONDS" -lt "$deadline" ] || return 124
        sleep 0.1
    done
}

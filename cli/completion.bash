# bash completion for memwatch: installed as share/bash-completion/completions/memwatch
# (bash-completion loads it when `memwatch` is first completed; `source` it otherwise).
#
# The subcommands and their options are read from memwatch itself (`memwatch --help`,
# `memwatch CMD -h`), so they always match the binary being completed. Tags (query --tag,
# diff's argument) come from the trace the command line names (query's trace argument,
# diff -t), else from the newest memwatch-*.db in the current directory, as the commands
# themselves choose; they are read with `memwatch query --sql`, whose guards make a
# hostile trace safe to read (memwatch-query(1), HOSTILE TRACES). Only plain tags (no
# quote, comma or newline in them) are offered.

# The commands `memwatch --help` lists.
_memwatch_commands() {
    "$1" --help 2>/dev/null | awk '/^Commands:/ { on = 1; next } on && !NF { exit } on { print $1 }'
}

# The options `memwatch CMD -h` describes: the first column of its option lines.
_memwatch_options() {
    "$1" "$2" -h 2>/dev/null | sed -n 's/^  *\(-[^ ].*\)/\1/p' | awk -F '   +' '{ print $1 }' |
        grep -oE -- '--?[A-Za-z][-A-Za-z]*' | sort -u
}

# The trace a command line reads: the word after -t/--trace, else the last *.db argument
# that is not an option's value, else the newest memwatch-*.db here.
_memwatch_trace_of() {
    local i w prev="" found=""
    for ((i = 2; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $prev in
        -t | --trace) found=$w ;;
        -o | --output | --sql | --tag | -f | --format) ;;
        *) [[ $w == *.db && $w != -* ]] && found=$w ;;
        esac
        prev=$w
    done
    if [[ -z $found ]]; then
        local f
        for f in memwatch-*.db; do
            [[ -f $f && ( -z $found || $f -nt $found ) ]] && found=$f
        done
    fi
    [[ -n $found ]] && printf '%s\n' "$found"
}

_memwatch_tags() {
    local trace
    trace=$(_memwatch_trace_of) || return
    [[ -f $trace ]] || return
    "$1" query -f csv --sql "SELECT DISTINCT tag FROM objects ORDER BY tag" "$trace" \
        2>/dev/null | tail -n +2 | grep -v '^"'
}

# Has diff's command line a tag before the word completed? What follows it are traces,
# read as one timeline.
_memwatch_diff_has_tag() {
    local i
    for ((i = 2; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        -t | --trace | --from | --to | -C | --context) ((i++)) ;;
        -*) ;;
        *) return 0 ;;
        esac
    done
    return 1
}

# Has the trace command line reached the script (or -m, -c) before the word completed?
# What follows it is the script's own.
_memwatch_past_script() {
    local i w
    for ((i = 2; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
        -m | -c | --) return 0 ;;
        -o | --output | --python | --check | --backend | --on-nan | -X | -W) ((i++)) ;;
        -*) ;;
        *) return 0 ;;
        esac
    done
    return 1
}

# _memwatch_reply WORDS CUR: the WORDS (one per line: a tag may hold spaces) that start
# with CUR.
_memwatch_reply() {
    local IFS=$'\n'
    COMPREPLY=($(compgen -W "$1" -- "$2"))
}

# _memwatch_choices CUR WORD...: the WORDs that start with CUR.
_memwatch_choices() {
    local cur=$1
    shift
    _memwatch_reply "$(printf '%s\n' "$@")" "$cur"
}

_memwatch() {
    local mw=${COMP_WORDS[0]} cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    COMPREPLY=()
    if ((COMP_CWORD == 1)); then
        _memwatch_reply "$(_memwatch_commands "$mw"; printf '%s\n' --help --version)" "$cur"
        return
    fi
    local cmd=${COMP_WORDS[1]}
    if [[ $cmd == trace ]] && _memwatch_past_script; then
        COMPREPLY=($(compgen -f -- "$cur"))
        compopt -o filenames 2>/dev/null
        return
    fi
    case $cmd:$prev in
    trace:--check) _memwatch_choices "$cur" line interval: manual; compopt -o nospace 2>/dev/null; return ;;
    trace:--backend) _memwatch_choices "$cur" auto uffd mprotect; return ;;
    trace:--on-nan) _memwatch_choices "$cur" off warn raise; return ;;
    trace:--python) COMPREPLY=($(compgen -c -- "$cur")); compopt -o filenames 2>/dev/null; return ;;
    trace:-m | trace:-c | *:--sql | *:-n | *:--limit | *:--since | *:--until | *:--from | \
        *:--to | *:-C | *:--context | *:--marks) return ;;
    query:-f | query:--format) _memwatch_choices "$cur" table csv json jsonl; return ;;
    query:--tag) _memwatch_reply "$(_memwatch_tags "$mw")" "$cur"; return ;;
    diff:-t | diff:--trace | query:-o)
        COMPREPLY=($(compgen -f -X '!*.db' -- "$cur") $(compgen -d -- "$cur"))
        compopt -o filenames 2>/dev/null; return ;;
    *:-o | *:--output) COMPREPLY=($(compgen -f -- "$cur")); compopt -o filenames 2>/dev/null; return ;;
    help:*) _memwatch_reply "$(_memwatch_commands "$mw")" "$cur"; return ;;
    esac
    if [[ $cur == -* ]]; then
        _memwatch_reply "$(_memwatch_options "$mw" "$cmd")" "$cur"
        return
    fi
    case $cmd in
    trace) COMPREPLY=($(compgen -f -X '!*.py' -- "$cur") $(compgen -d -- "$cur"))
        compopt -o filenames 2>/dev/null ;;
    query | report) COMPREPLY=($(compgen -f -X '!*.db' -- "$cur") $(compgen -d -- "$cur"))
        compopt -o filenames 2>/dev/null ;;
    diff)
        if _memwatch_diff_has_tag; then
            COMPREPLY=($(compgen -f -X '!*.db' -- "$cur") $(compgen -d -- "$cur"))
            compopt -o filenames 2>/dev/null
        else
            _memwatch_reply "$(_memwatch_tags "$mw")" "$cur"
        fi ;;
    esac
}

complete -F _memwatch memwatch

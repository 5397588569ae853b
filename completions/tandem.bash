# bash completion for tandem: its subcommands, their options, and the node names of the cluster
# the command line names (-c FILE, else $TANDEM_CONFIG, else ./tandem.yaml, else
# ./tandem-local/tandem.yaml). Installed by the Debian package in
# /usr/share/bash-completion/completions/tandem.

_tandem_config() {
  local i
  for ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do
    case "${COMP_WORDS[i]}" in
    -c | --config) printf '%s\n' "${COMP_WORDS[i + 1]}" && return ;;
    esac
  done
  if [[ -n "${TANDEM_CONFIG:-}" ]]; then
    printf '%s\n' "$TANDEM_CONFIG"
  elif [[ -f tandem.yaml ]]; then
    printf '%s\n' tandem.yaml
  elif [[ -f tandem-local/tandem.yaml ]]; then
    printf '%s\n' tandem-local/tandem.yaml
  fi
}

# The nodes' names, as tandem.yaml lists them ("  - name: node1").
_tandem_nodes() {
  local config
  config=$(_tandem_config)
  [[ -r "$config" ]] || return
  sed -n 's/^[[:space:]]*-[[:space:]]*name:[[:space:]]*\([a-z0-9_]*\)[[:space:]]*$/\1/p' "$config"
}

_tandem() {
  local current previous command="" word i
  current="${COMP_WORDS[COMP_CWORD]}"
  previous="${COMP_WORDS[COMP_CWORD - 1]}"
  local commands="init clone status promote rejoin reinit slot local agent transitions history
    switchover failover pause resume dsn adopt restart reload member backup restore config
    repository"
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="${COMP_WORDS[i]}"
    case "$word" in
    -c | --config) ((i++)) ;;
    -*) ;;
    *) command="$word" && break ;;
    esac
  done
  case "$previous" in
  -c | --config)
    COMPREPLY=($(compgen -f -- "$current"))
    return
    ;;
  --to)
    # restore's --to is a time or an LSN, switchover's and failover's a node.
    [[ "$command" == restore ]] && COMPREPLY=($(compgen -W "latest immediate" -- "$current")) &&
      return
    COMPREPLY=($(compgen -W "$(_tandem_nodes)" -- "$current"))
    return
    ;;
  --node | --from)
    COMPREPLY=($(compgen -W "$(_tandem_nodes)" -- "$current"))
    return
    ;;
  --dir | --pg-bin)
    COMPREPLY=($(compgen -d -- "$current"))
    return
    ;;
  esac
  local options=""
  case "$command" in
  "")
    COMPREPLY=($(compgen -W "$commands -c --config -v --verbose --version --help" -- "$current"))
    return
    ;;
  init | clone | promote | rejoin | reinit | restart | reload)
    options="--help"
    [[ "$command" == clone ]] && options+=" --from --from-backup --set"
    [[ "$command" == restart ]] && options+=" --all --pending"
    [[ "$command" == promote ]] && options+=" --allow-data-loss"
    ;;
  switchover) options="--to --help" ;;
  failover) options="--to --allow-data-loss --help" ;;
  agent) options="--node --help" ;;
  repository) options="--help" ;;
  status) options="--json --help" ;;
  dsn) options="--role --dbname --user --help" ;;
  history) options="--json --help" ;;
  backup) options="list check --type --from-primary --progress --json --help" ;;
  restore) options="--to --dir --port --promote --set --help" ;;
  adopt)
    COMPREPLY=($(compgen -d -W "--dir --cluster --names --api-base-port --pg-bin --node --help" \
      -- "$current"))
    return
    ;;
  slot)
    COMPREPLY=($(compgen -W "list drop cleanup --help" -- "$current"))
    return
    ;;
  config)
    [[ "$previous" == config ]] && COMPREPLY=($(compgen -W "set unset show --help" -- "$current"))
    [[ "$previous" == show ]] && COMPREPLY=($(compgen -W "--json --help" -- "$current"))
    return
    ;;
  member)
    if [[ "$previous" == member ]]; then
      COMPREPLY=($(compgen -W "add remove --help" -- "$current"))
    elif [[ "$previous" == --data-dir ]]; then
      COMPREPLY=($(compgen -d -- "$current"))
    elif [[ "$current" == -* ]]; then
      COMPREPLY=($(compgen -W "--host --port --data-dir --api-port --nofailover --wait --help" \
        -- "$current"))
    elif [[ " ${COMP_WORDS[*]} " == *" remove "* ]]; then
      COMPREPLY=($(compgen -W "$(_tandem_nodes)" -- "$current"))
    fi
    return
    ;;
  local)
    if [[ "$previous" == local ]]; then
      COMPREPLY=($(compgen -W "up down start stop kill-pg crash --help" -- "$current"))
    else
      COMPREPLY=($(compgen -W "$(_tandem_nodes)" -- "$current"))
    fi
    return
    ;;
  esac
  # Options once a dash is typed; a node's name otherwise.
  if [[ "$current" == -* ]]; then
    COMPREPLY=($(compgen -W "$options" -- "$current"))
    return
  fi
  case "$command" in
  init | clone | promote | rejoin | reinit | restart | reload)
    COMPREPLY=($(compgen -W "$(_tandem_nodes)" -- "$current"))
    ;;
  esac
}

complete -F _tandem tandem

#!/usr/bin/env bash
# Render the SESPCLSwitch Asterisk config templates into a node's etc directory.
#
#   asterisk-config/install.sh NODE_NAME NODE_ADDRESS RTP_START RTP_END DEST_ETC_DIR
#
# Environment:
#   SESPCL_AMI_SECRET    AMI secret of user 'sespcl'   (default: a dev value, with a warning)
#   SESPCL_ARI_PASSWORD  ARI password of user 'sespcl' (default: a dev value, with a warning)
#   SESPCL_AMI_ADMIN_SECRET  AMI secret of the CLI's user 'sespcl-admin' (default: none, and
#                        the user is left out: the CLI then cannot test trunks on this node)
#   SESPCL_AUDIO_DIR     directory of pre-rendered audio (default /var/lib/sespcl/audio)
#   SESPCL_CONFIG_GID    optional numeric gid (or group name) that may read the
#                        rendered files; then files are 0640 root:<gid>, else 0644
#   SESPCL_EXTERNAL_ADDRESS  optional: the public IPv4 address or host name carriers reach this
#                        node at through NAT (Docker's, a router's); SIP headers and SDP sent
#                        outside the private networks carry it. Empty: nothing is rewritten.
#   SESPCL_EXTERNAL_SIGNALING_PORT  with it: the public SIP port (udp and tcp), when NAT maps
#                        another port to the node's 5060 (default: 5060 itself)
#
# Every *.conf file next to this script is a template; tokens @NODE_NAME@,
# @NODE_ADDRESS@, @RTP_START@, @RTP_END@, @AMI_SECRET@, @ARI_PASSWORD@,
# @AUDIO_DIR@, @EXTERNAL_ADDRESS@, @EXTERNAL_SIGNALING_PORT@ are substituted.
# Files previously rendered by this script that no longer have a template are
# removed from DEST_ETC_DIR; other files are kept.
set -euo pipefail

die() { printf 'install.sh: ERROR: %s\n' "$*" >&2; exit 1; }
warn() { printf 'install.sh: WARNING: %s\n' "$*" >&2; }

[[ $# -eq 5 ]] || die "usage: $0 NODE_NAME NODE_ADDRESS RTP_START RTP_END DEST_ETC_DIR"
NODE_NAME=$1 NODE_ADDRESS=$2 RTP_START=$3 RTP_END=$4 DEST=$5
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MARKER="; Rendered by SESPCLSwitch asterisk-config/install.sh - do not edit, edit the template in the repo"

[[ $NODE_NAME =~ ^[a-z][a-z0-9-]{0,30}$ ]] || die "node name '$NODE_NAME' must match ^[a-z][a-z0-9-]{0,30}\$"
octet='(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])'
[[ $NODE_ADDRESS =~ ^$octet\.$octet\.$octet\.$octet$ ]] || die "node address '$NODE_ADDRESS' is not a dotted-quad IPv4 address"
[[ $RTP_START =~ ^[0-9]{1,5}$ && $RTP_END =~ ^[0-9]{1,5}$ ]] || die "RTP ports must be numbers (got '$RTP_START' '$RTP_END')"
(( RTP_START >= 1024 && RTP_END <= 65535 && RTP_START < RTP_END )) || die "RTP range $RTP_START-$RTP_END must satisfy 1024 <= start < end <= 65535"
[[ -n $DEST && $DEST != / ]] || die "DEST_ETC_DIR must be a directory path"

AUDIO_DIR="${SESPCL_AUDIO_DIR:-/var/lib/sespcl/audio}"
AUDIO_DIR="${AUDIO_DIR%/}"
# The dialplan accepts only audio paths made of these characters.
[[ $AUDIO_DIR =~ ^/[a-z0-9_.-]+(/[a-z0-9_.-]+)*$ && $AUDIO_DIR != *..* ]] \
    || die "SESPCL_AUDIO_DIR '$AUDIO_DIR' must be an absolute path of characters [/a-z0-9_.-] without '..'"

AMI_SECRET="${SESPCL_AMI_SECRET:-}"
ARI_PASSWORD="${SESPCL_ARI_PASSWORD:-}"
if [[ -z $AMI_SECRET ]]; then
    AMI_SECRET=sespcl-dev-ami-secret
    warn "SESPCL_AMI_SECRET is not set; using the development secret '$AMI_SECRET'"
fi
if [[ -z $ARI_PASSWORD ]]; then
    ARI_PASSWORD=sespcl-dev-ari-password
    warn "SESPCL_ARI_PASSWORD is not set; using the development password '$ARI_PASSWORD'"
fi
# Asterisk config values: ';' starts a comment, spaces are trimmed, newlines end the value.
secret_re='^[A-Za-z0-9._~+/=:@%^*!-]{8,128}$'
[[ $AMI_SECRET =~ $secret_re ]] || die "SESPCL_AMI_SECRET must be 8-128 characters of [A-Za-z0-9._~+/=:@%^*!-]"
AMI_ADMIN_SECRET="${SESPCL_AMI_ADMIN_SECRET:-}"
if [[ -n $AMI_ADMIN_SECRET ]]; then
    [[ $AMI_ADMIN_SECRET =~ $secret_re ]] || die "SESPCL_AMI_ADMIN_SECRET must be 8-128 characters of [A-Za-z0-9._~+/=:@%^*!-]"
    [[ $AMI_ADMIN_SECRET != "$AMI_SECRET" ]] || die "SESPCL_AMI_ADMIN_SECRET must differ from SESPCL_AMI_SECRET"
fi
[[ $ARI_PASSWORD =~ $secret_re ]] || die "SESPCL_ARI_PASSWORD must be 8-128 characters of [A-Za-z0-9._~+/=:@%^*!-]"

# PJSIP realtime reads trunks from the orchestrator's PostgreSQL.
DB_HOST="${SESPCL_ASTERISK_DB_HOST:-127.0.0.1}"
DB_PORT="${SESPCL_ASTERISK_DB_PORT:-5432}"
DB_NAME="${SESPCL_ASTERISK_DB_NAME:-sespcl}"
DB_USER="${SESPCL_ASTERISK_DB_USER:-postgres}"
DB_PASSWORD="${SESPCL_ASTERISK_DB_PASSWORD:-}"
[[ $DB_HOST =~ ^[A-Za-z0-9.-]{1,253}$ ]] || die "SESPCL_ASTERISK_DB_HOST '$DB_HOST' is not a host name or address"
[[ $DB_PORT =~ ^[0-9]{1,5}$ ]] || die "SESPCL_ASTERISK_DB_PORT '$DB_PORT' is not a port"
[[ $DB_NAME =~ ^[A-Za-z0-9_-]{1,63}$ ]] || die "SESPCL_ASTERISK_DB_NAME '$DB_NAME' has characters Asterisk config cannot carry"
[[ $DB_USER =~ ^[A-Za-z0-9_-]{1,63}$ ]] || die "SESPCL_ASTERISK_DB_USER '$DB_USER' has characters Asterisk config cannot carry"
[[ -z $DB_PASSWORD || $DB_PASSWORD =~ ^[A-Za-z0-9._~+/=:@%^*!-]{1,128}$ ]] || die "SESPCL_ASTERISK_DB_PASSWORD must be 1-128 characters of [A-Za-z0-9._~+/=:@%^*!-]"
# NAT: pjsip.conf's external_* settings. Unset, they render as Asterisk's own defaults (an empty
# address, port 0): nothing is rewritten, as on a node with an address of its own.
EXTERNAL_ADDRESS="${SESPCL_EXTERNAL_ADDRESS:-}"
EXTERNAL_SIGNALING_PORT=0
if [[ -n $EXTERNAL_ADDRESS ]]; then
    [[ $EXTERNAL_ADDRESS =~ ^$octet\.$octet\.$octet\.$octet$ || $EXTERNAL_ADDRESS =~ ^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$ ]] \
        || die "SESPCL_EXTERNAL_ADDRESS '$EXTERNAL_ADDRESS' is not an IPv4 address or a host name"
    EXTERNAL_SIGNALING_PORT="${SESPCL_EXTERNAL_SIGNALING_PORT:-0}"
    [[ $EXTERNAL_SIGNALING_PORT =~ ^[0-9]{1,5}$ ]] && (( EXTERNAL_SIGNALING_PORT <= 65535 )) \
        || die "SESPCL_EXTERNAL_SIGNALING_PORT '$EXTERNAL_SIGNALING_PORT' is not a port"
fi
# Where the node reads its config from once running (inside the chroot or container).
ETC_DIR="${SESPCL_NODE_ETC_DIR:-/etc/asterisk-$NODE_NAME}"
[[ $ETC_DIR =~ ^/[A-Za-z0-9_./-]+$ ]] || die "SESPCL_NODE_ETC_DIR '$ETC_DIR' must be an absolute path"

# bash >= 5.2 would expand '&' in ${var//pat/rep} replacements.
shopt -u patsub_replacement 2>/dev/null || true

mkdir -p -- "$DEST"
shopt -s nullglob
templates=("$SRC"/*.conf)
[[ ${#templates[@]} -gt 0 ]] || die "no *.conf templates in $SRC"

declare -A rendered=()
for tpl in "${templates[@]}"; do
    name="$(basename "$tpl")"
    content="$(<"$tpl")"
    check="$content"
    for tok in NODE_NAME NODE_ADDRESS RTP_START RTP_END AMI_SECRET AMI_ADMIN_SECRET ARI_PASSWORD AUDIO_DIR \
               DB_HOST DB_PORT DB_NAME DB_USER DB_PASSWORD ETC_DIR EXTERNAL_ADDRESS EXTERNAL_SIGNALING_PORT; do
        check="${check//@$tok@/}"
    done
    if [[ $check =~ @[A-Z_]+@ ]]; then
        die "template $name has an unknown token ${BASH_REMATCH[0]}"
    fi
    content="${content//@NODE_NAME@/$NODE_NAME}"
    content="${content//@NODE_ADDRESS@/$NODE_ADDRESS}"
    content="${content//@RTP_START@/$RTP_START}"
    content="${content//@RTP_END@/$RTP_END}"
    content="${content//@AMI_SECRET@/$AMI_SECRET}"
    if [[ $name == manager.conf && -z $AMI_ADMIN_SECRET ]]; then
        # No administrative secret given: no administrative user at all, rather than a guessable one.
        content="$(printf '%s\n' "$content" | awk '/^\[sespcl-admin\]/ { skip = 1; next } /^\[/ { skip = 0 } !skip')"
    fi
    content="${content//@AMI_ADMIN_SECRET@/$AMI_ADMIN_SECRET}"
    content="${content//@ARI_PASSWORD@/$ARI_PASSWORD}"
    content="${content//@AUDIO_DIR@/$AUDIO_DIR}"
    content="${content//@DB_HOST@/$DB_HOST}"
    content="${content//@DB_PORT@/$DB_PORT}"
    content="${content//@DB_NAME@/$DB_NAME}"
    content="${content//@DB_USER@/$DB_USER}"
    content="${content//@DB_PASSWORD@/$DB_PASSWORD}"
    content="${content//@ETC_DIR@/$ETC_DIR}"
    content="${content//@EXTERNAL_ADDRESS@/$EXTERNAL_ADDRESS}"
    content="${content//@EXTERNAL_SIGNALING_PORT@/$EXTERNAL_SIGNALING_PORT}"
    tmp="$(mktemp "$DEST/.${name}.XXXXXX")"
    printf '%s\n%s\n' "$MARKER" "$content" >"$tmp"
    if [[ -n ${SESPCL_CONFIG_GID:-} ]]; then
        chgrp -- "$SESPCL_CONFIG_GID" "$tmp"
        chmod 0640 "$tmp"
    else
        chmod 0644 "$tmp"
    fi
    mv -f -- "$tmp" "$DEST/$name"
    rendered[$name]=1
done

# Drop files this script rendered earlier whose template is gone.
for f in "$DEST"/*.conf; do
    name="$(basename "$f")"
    [[ -n ${rendered[$name]:-} ]] && continue
    if [[ "$(head -n 1 -- "$f")" == "$MARKER" ]]; then
        rm -f -- "$f"
    fi
done

# Operators' dialplan contexts (SESPCL_CUSTOM_DIALPLAN_DIR, default custom/ next to this
# script), copied as they are into DEST/custom/, where extensions.conf includes them. Each file
# may define [sespcl-custom-*] contexts only, and no #include or #exec: a call's `dialplan`
# can only name such a context, and nothing else in the node's dialplan may be replaced.
CUSTOM_SRC="${SESPCL_CUSTOM_DIALPLAN_DIR:-$SRC/custom}"
mkdir -p -- "$DEST/custom"
declare -A custom_copied=()
for f in "$CUSTOM_SRC"/*.conf; do
    name="$(basename "$f")"
    [[ $name =~ ^[A-Za-z0-9_.-]+\.conf$ ]] || die "custom dialplan file name '$name' must be [A-Za-z0-9_.-]"
    if bad="$(grep -nE '^[[:space:]]*\[' "$f" | grep -vE '^[0-9]+:[[:space:]]*\[sespcl-custom-[a-z0-9][a-z0-9-]{0,39}\]([[:space:]]*(;.*)?)?$')"; then
        die "custom dialplan $name defines a context outside sespcl-custom-*: ${bad%%$'\n'*}"
    fi
    if bad="$(grep -nE '^[[:space:]]*#' "$f")"; then
        die "custom dialplan $name may not use #include or #exec: ${bad%%$'\n'*}"
    fi
    install -m 0644 -- "$f" "$DEST/custom/$name"
    [[ -n ${SESPCL_CONFIG_GID:-} ]] && chgrp -- "$SESPCL_CONFIG_GID" "$DEST/custom/$name" && chmod 0640 "$DEST/custom/$name"
    custom_copied[$name]=1
done
for f in "$DEST"/custom/*.conf; do
    [[ -n ${custom_copied[$(basename "$f")]:-} ]] || rm -f -- "$f"
done

# A self-signed certificate for the TLS transport, made once per node and kept.
if [[ ! -s $DEST/keys/node.crt || ! -s $DEST/keys/node.key ]]; then
    command -v openssl >/dev/null || die "openssl is needed to make the node's TLS certificate"
    mkdir -p -- "$DEST/keys"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=sespcl-$NODE_NAME" \
        -keyout "$DEST/keys/node.key" -out "$DEST/keys/node.crt" >/dev/null 2>&1 \
        || die "openssl could not make a certificate"
fi
chmod 0755 "$DEST/keys"
chmod 0644 "$DEST/keys/node.crt"
chmod 0640 "$DEST/keys/node.key"
[[ -n ${SESPCL_CONFIG_GID:-} ]] && chgrp -R -- "$SESPCL_CONFIG_GID" "$DEST/keys"

if [[ -n ${SESPCL_CONFIG_GID:-} ]]; then
    chgrp -- "$SESPCL_CONFIG_GID" "$DEST"
    chmod 0750 "$DEST"
else
    chmod 0755 "$DEST"
fi
printf 'install.sh: rendered %d files for node %s (%s, RTP %s-%s) into %s\n' \
    "${#rendered[@]}" "$NODE_NAME" "$NODE_ADDRESS" "$RTP_START" "$RTP_END" "$DEST" >&2

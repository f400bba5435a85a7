#!/bin/sh
# Incident-response playbook: collect one profile from this host into a sealed, encrypted bundle,
# verify it, and leave everything for hand-over in one new folder. Nothing is uploaded.
#
#   sh examples/playbook.sh [PROFILE] [OUTPUT-FOLDER]
#
# Who the bundle is encrypted to comes from the configuration, like the examiner's name and the
# signing key (see docs/playbooks.md): EVIDENCEKIT_RECIPIENTS=age1… in the environment, or
# "recipients:" in ~/.config/evidencekit/config.yaml. CASE_ID sets the case number.
#
# Exit codes: 0 collected and verified; 3 collected and verified, but some files could not be read
# (listed in capture.json and the manifest); anything else: the playbook failed (see the message).
# JSON is read with jq when it is installed, else with python3 (PLAYBOOK_JSON=python forces it).
set -u

profile=${1:-user-files}
host=$(hostname 2>/dev/null || echo host)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
outdir=${2:-./ir-$host-$stamp}
case_id=${CASE_ID:-IR-$host-$stamp}
ek=${EVIDENCEKIT:-evidencekit}

say() { printf '%s\n' "playbook: $*" >&2; }
# fail MESSAGE [EXIT-CODE]: the code is the exit status, not part of the message.
fail() { say "FAILED: $1"; exit "${2:-1}"; }

# json FILE PATH: the value at a dotted PATH (e.g. seal.counts.files); "length(PATH)" counts a list.
json() {
    if [ "${PLAYBOOK_JSON:-}" != python ] && command -v jq >/dev/null 2>&1; then
        case $2 in
            "length("*) inner=${2#length(}; jq -r ".${inner%)} | length" "$1" ;;
            *) jq -r ".$2" "$1" ;;
        esac
    else
        python3 - "$1" "$2" <<'EOF'
import json, sys
value = json.load(open(sys.argv[1], encoding="utf-8"))
path = sys.argv[2]
count = path.startswith("length(")
for key in path[7:-1].split(".") if count else path.split("."):
    value = value[int(key)] if isinstance(value, list) else value.get(key) if value else None
value = len(value) if count else value
print(value if isinstance(value, str) else json.dumps(value))
EOF
    fi
}

[ -e "$outdir" ] && fail "$outdir already exists; choose a new folder" 2
mkdir -p "$outdir" || fail "cannot create $outdir" 2
bundle="$outdir/$case_id.evidence"

# 1. Capture. --json: one document on stdout; --progress json: progress events on stderr.
say "capturing profile '$profile' on $host into $bundle"
"$ek" capture --profile "$profile" --case "$case_id" -o "$bundle" \
    --json --progress json >"$outdir/capture.json" 2>"$outdir/capture.log"
captured=$?
case $captured in
    0) say "capture complete" ;;
    3) say "capture finished, but $(json "$outdir/capture.json" 'length(problems)') item(s) were" \
           "not captured completely or were skipped by the profile (see capture.json)" ;;
    *) hint=$(json "$outdir/capture.json" error.hint 2>/dev/null)
       case $hint in ""|null) hint= ;; *) hint=" ($hint)" ;; esac
       fail "capture exited with $captured: $(json "$outdir/capture.json" error.message 2>/dev/null)$hint" \
            "$captured" ;;
esac
[ "$(json "$outdir/capture.json" ok)" = true ] || fail "capture.json does not say ok"
say "$(json "$outdir/capture.json" seal.counts.files) file(s)," \
    "$(json "$outdir/capture.json" seal.total_bytes) bytes;" \
    "$(json "$outdir/capture.json" 'length(profile.missing)') profile path(s) not present here"
root=$(json "$outdir/capture.json" seal.manifest_root)
signer=$(json "$outdir/capture.json" seal.signer.public_key)

# 2. Verify what was written: seal, signatures, custody log, payload hash, and that it was signed
#    by the key that made it (no decryption key is needed, and none is on this host).
"$ek" verify "$bundle" --trusted-key "$signer" --json >"$outdir/verify.json" 2>>"$outdir/capture.log"
verified=$?
[ "$verified" -eq 0 ] || fail "verify exited with $verified (see $outdir/verify.json)" "$verified"
[ "$(json "$outdir/verify.json" signer.trusted)" = true ] || fail "the signer is not the one expected"
[ "$(json "$outdir/verify.json" seal.manifest_root)" = "$root" ] || fail "root hash differs"

# 3. A receipt for whoever takes the bundle, and a checksum for the transport.
"$ek" receipt "$bundle" -o "$outdir/receipt.txt" >/dev/null || fail "no receipt was made"
if command -v sha256sum >/dev/null 2>&1; then
    (cd "$outdir" && sha256sum "$case_id.evidence" >SHA256SUMS)
fi

say "verified: root hash $root"
say "hand over: $outdir (bundle, receipt.txt, capture.json, verify.json)"
exit "$captured"

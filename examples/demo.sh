#!/bin/sh
# A complete run on the sample data: key, capture, inspect, verify, extract, compare.
# Everything is written to a new temporary folder; the sample data is only read.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
echo "== working in $work"
evidencekit key generate -o "$work/victim_ed25519"
evidencekit key generate -o "$work/investigator_ed25519"
evidencekit capture "$here/sample-evidence" --case DEMO-2026-0001 --examiner "Demo Victim" \
    --description "Phishing email, card charged twice" \
    --recipient-file "$work/investigator_ed25519.pub" \
    --sign-key "$work/victim_ed25519" -o "$work/demo.evidence"
evidencekit inspect "$work/demo.evidence"
evidencekit verify "$work/demo.evidence" --trusted-key "$work/victim_ed25519.pub"
evidencekit verify "$work/demo.evidence" -i "$work/investigator_ed25519"
evidencekit extract "$work/demo.evidence" -i "$work/investigator_ed25519" -o "$work/opened"
diff -r "$here/sample-evidence" "$work/opened/data/sample-evidence" && echo "== extracted files are identical to the originals"

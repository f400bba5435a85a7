#!/bin/sh
# Verify an evidencekit bundle with standard tools only: tar, age, ssh-keygen, sha256sum and
# POSIX sh, awk, sed, grep, find. This file is the procedure of docs/FORMAT.md §7.2, block by
# block (a test checks that the two are the same).
#
#   sh verify-by-hand.sh [-i KEY | -p] [-t TRUSTED_KEYS] [-o FOLDER] BUNDLE
#
#   -i KEY           decrypt with this age identity file or OpenSSH private key
#   -p               the bundle is protected by a passphrase: age asks for it
#                    (without -i or -p only the public parts are checked)
#   -t TRUSTED_KEYS  a file of OpenSSH public keys you trust (one per line, as in a .pub file);
#                    the sealer must be one of them
#   -o FOLDER        where to unpack (a new folder; default BUNDLE's name + .checked); the
#                    checked evidence is left in FOLDER/payload/bag/data
#
# Prints each step and ends with a verdict; exit status 0 when nothing failed, 1 when
# something did, 2 when it could not start.
LC_ALL=C
export LC_ALL
umask 077
identity='' passphrase='' trusted='' work=''
usage='usage: sh verify-by-hand.sh [-i KEY | -p] [-t TRUSTED_KEYS] [-o FOLDER] BUNDLE'
while getopts i:pt:o: option; do
  case $option in
    i) identity=$OPTARG ;;
    p) passphrase=yes ;;
    t) trusted=$OPTARG ;;
    o) work=$OPTARG ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || { echo "$usage" >&2; exit 2; }
bundle=$1
[ -n "$work" ] || work=${bundle##*/}.checked  # (a name may start with -, which basename reads as an option)
absolute() { case $1 in /*|'') printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }
bundle=$(absolute "$bundle") identity=$(absolute "$identity") trusted=$(absolute "$trusted")
work=$(absolute "$work")
mkdir "$work" || exit 2
cd "$work" || exit 2
top=$PWD problems=0 failures='' warnings=0 checked_payload=no untrusted_reseal='' addenda=''

step() { printf '\n== %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
warn() { printf '   warning: %s\n' "$*"; warnings=$((warnings + 1)); }
fail() {
  printf '   FAILED: %s\n' "$*"
  problems=$((problems + 1))
  failures="$failures
 - $*"
}
sha256() { sha256sum < "$1" | cut -c1-64; }
is_sha256() { case $1 in *[!0-9a-f]*) return 1 ;; esac; [ ${#1} -eq 64 ]; }
is_key() { case $1 in 'ssh-ed25519 '*) ;; *) return 1 ;; esac
           case ${1#ssh-ed25519 } in ''|*[!A-Za-z0-9+/=]*) return 1 ;; esac; }
fingerprint() { printf '%s\n' "$1" > "$top/key.pub" && ssh-keygen -lf "$top/key.pub" | awk '{print $2}'; }
trusts() { [ -n "$trusted" ] && awk '{ sub(/\r$/, ""); print $1 " " $2 }' "$trusted" | grep -qxF "$1"; }

# jget FILE KEY ERE [details]: the value of "KEY" in a canonical JSON document (§Conventions:
# one line, keys sorted, no spaces), printed as it is written ("…" for a string); strings
# whose text has no \ escape are printed without their quotes. A key is "KEY": right after {
# or , (inside a string every " is escaped, so this never matches text in a value). The
# custody events' and addenda's "details" object is left out of the search, or with
# "details" it is the only place searched. Exit status 1 when the key is absent, 2 when it
# occurs more than once, its value does not match ERE, or the file is not one line.
jget() {
  ERE=$3 awk -v key="$2" -v scope="${4:-top}" '
    NR > 1 { exit 2 }
    {
      text = $0
      details = "[{,]\"details\":[{]([^\"}]|\"([^\"\\\\]|\\\\.)*\")*[}]"
      if (match(text, details)) {
        if (scope == "details") text = substr(text, RSTART, RLENGTH)
        else text = substr(text, 1, RSTART) "\"details\":{}" substr(text, RSTART + RLENGTH)
      } else if (scope == "details") exit 1
      copy = text
      n = gsub("[{,]\"" key "\":", "", copy)
      if (n == 0) exit 1
      if (n > 1 || !match(text, "[{,]\"" key "\":(" ENVIRON["ERE"] ")[,}]")) exit 2
      value = substr(text, RSTART + length(key) + 4, RLENGTH - length(key) - 5)
      if (value ~ /^"[^\\]*"$/) value = substr(value, 2, length(value) - 2)
      print value
    }' "$1"
}
STRING='"([^"\\]|\\.)*"'
# one_document FILE TYPE: FILE is a single line ending in a newline, of that type
one_document() {
  [ "$(wc -l < "$1")" -eq 1 ] && [ -z "$(tail -c 1 "$1")" ] &&
    [ "$(jget "$1" type "$STRING")" = "$2" ]
}
# signed_by FILE KEY WHAT: FILE.sig is an evidencekit signature of FILE by KEY, and by no
# other key (ssh-keygen -Y verify with an allowed-signers file holding only KEY)
signed_by() {
  printf 'signer namespaces="evidencekit" %s\n' "$2" > "$top/allowed_signers"
  if ssh-keygen -Y verify -f "$top/allowed_signers" -I signer -n evidencekit -s "$1.sig" \
       < "$1" > "$top/ssh-keygen.out" 2>&1; then
    ok "$3 ($1): $(cat "$top/ssh-keygen.out")"
  else
    fail "$3 ($1) is not signed by the key it names, $(fingerprint "$2")"
  fi
}

step "1. The outer tar holds only the members of §1, in their order"
tar -tvf "$bundle" > outer.types 2> tar.err && tar -tf "$bundle" > outer.names 2>> tar.err ||
  fail "tar cannot read $bundle: $(cat tar.err)"
if awk 'substr($0, 1, 1) != "-" { bad = 1 } END { exit bad }' outer.types; then
  ok "every member is a regular file"
else
  fail "the bundle holds members that are not regular files"
fi
grep -v '^timestamps/' outer.names > outer.main
grep '^timestamps/' outer.names > outer.stamps
stamps=$(( $(wc -l < outer.stamps) ))
events=$(( ($(wc -l < outer.main) - 4) / 2 ))
{ printf '%s\n' README.txt payload.age seal.json seal.json.sig
  i=1
  while [ "$i" -le "$events" ]; do
    printf 'custody/%06d.json\ncustody/%06d.json.sig\n' "$i" "$i"
    i=$((i + 1))
  done; } > outer.expected
if [ "$events" -ge 1 ] && cmp -s outer.expected outer.main; then
  ok "README.txt, payload.age, seal.json, seal.json.sig and $events custody events"
else
  fail "the members are not README.txt, payload.age, seal.json, seal.json.sig, custody/000001.json, custody/000001.json.sig, ... in that order: $(diff outer.expected outer.main)"
fi
i=1
while [ "$i" -le "$stamps" ]; do printf 'timestamps/%06d.tsr\n' "$i"; i=$((i + 1)); done > stamps.expected
if ! cmp -s stamps.expected outer.stamps; then
  fail "the timestamps are not timestamps/000001.tsr, timestamps/000002.tsr, ... in that order: $(diff stamps.expected outer.stamps)"
elif [ "$stamps" -ge 1 ]; then
  ok "and $stamps trusted timestamps (check each with openssl ts -verify: FORMAT.md §7.2, at its end)"
fi
mkdir outer && tar -xf "$bundle" -C outer 2> tar.err || fail "tar -x: $(cat tar.err)"
cd outer || exit 2

step "2, 3. The seal and its signature"
one_document seal.json evidencekit.seal || fail "seal.json is not one line of JSON of type evidencekit.seal"
version=$(jget seal.json format_version '[0-9]+')
compression=none
case $version in
  1|2) ok "format version $version" ;;
  4) if compression=$(jget seal.json payload_compression "$STRING") && [ "$compression" = zstd ]; then
       ok "format version 4: the payload tar is compressed with zstd before age (zstd -d undoes it)"
     else
       fail "seal.json: a version 4 seal says \"payload_compression\":\"zstd\""
     fi ;;
  *) fail "seal.json: unknown format version '$version'" ;;
esac
case_id=$(jget seal.json case_id "$STRING") || fail "seal.json: no case_id"
signer=$(jget seal.json public_key "$STRING")
if is_key "$signer"; then
  sealer=$(fingerprint "$signer")
  [ "$(jget seal.json fingerprint "$STRING")" = "$sealer" ] ||
    fail "seal.json: the signer's fingerprint is not that of its public key ($sealer)"
  signed_by seal.json "$signer" "the seal"
else
  fail "seal.json: signer.public_key is not an ssh-ed25519 key"
  sealer=unknown
fi
if [ -z "$trusted" ]; then
  warn "the sealer is $sealer: compare this fingerprint with the one you were given (or pass -t)"
elif trusts "$signer"; then
  ok "the sealer, $sealer, is in $trusted"
else
  fail "the sealer, $sealer, is not one of the keys in $trusted"
fi

step "4. README.txt"
if [ "$(sha256 README.txt)" = "$(jget seal.json readme_sha256 "$STRING")" ]; then
  ok "its SHA-256 is the seal's readme_sha256"
else
  fail "README.txt: its SHA-256 is not the seal's readme_sha256"
fi

step "6. The custody log: each event signed by the key it names, chained, about the payload of its moment"
payload=$(jget seal.json sha256 "$STRING") payload_size=$(jget seal.json size '[0-9]+')
previous=$(sha256 seal.json) previous_time='' i=1
while [ "$i" -le "$events" ]; do
  e=custody/$(printf %06d "$i").json
  one_document "$e" evidencekit.custody-event ||
    fail "$e is not one line of JSON of type evidencekit.custody-event"
  [ "$(jget "$e" sequence '[0-9]+')" = "$i" ] || fail "$e: its sequence is not $i"
  [ "$(jget "$e" case_id "$STRING")" = "$case_id" ] || fail "$e: not the seal's case"
  actor=$(jget "$e" public_key "$STRING")
  action=$(jget "$e" action "$STRING")
  if is_key "$actor"; then
    by=$(fingerprint "$actor")
    [ "$(jget "$e" fingerprint "$STRING")" = "$by" ] ||
      fail "$e: the actor's fingerprint is not that of the actor's public key ($by)"
    signed_by "$e" "$actor" "event $i, $action by $(jget "$e" name "$STRING")"
  else
    fail "$e: actor.public_key is not an ssh-ed25519 key"
    by=unknown
  fi
  [ "$(jget "$e" previous_sha256 "$STRING")" = "$previous" ] ||
    fail "$e: previous_sha256 is not the SHA-256 of $( [ "$i" -eq 1 ] && echo seal.json || echo the event before): the log was edited, reordered or cut in the middle"
  if [ "$i" -eq 1 ]; then
    [ "$action" = captured ] && [ "$actor" = "$signer" ] ||
      fail "$e: the first event must be 'captured', by the sealer"
  elif [ "$action" = captured ]; then
    fail "$e: only the first event may be 'captured'"
  fi
  if [ "$action" != resealed ]; then
    [ "$(jget "$e" payload_sha256 "$STRING")" = "$payload" ] ||
      fail "$e: payload_sha256 is not the payload the bundle held at that point ($payload)"
  else
    [ "$(jget "$e" old_payload_sha256 "$STRING" details)" = "$payload" ] ||
      fail "$e: old_payload_sha256 is not the payload the bundle held before ($payload)"
    new=$(jget "$e" new_payload_sha256 "$STRING" details)
    is_sha256 "$new" && [ "$new" != "$payload" ] &&
      [ "$(jget "$e" payload_sha256 "$STRING")" = "$new" ] ||
      fail "$e: a reseal names a new payload (new_payload_sha256, also its payload_sha256) other than the old one"
    payload=$new payload_size=$(jget "$e" new_payload_size '"[0-9]+"' details)
    warn "event $i: the payload was resealed (re-encrypted) by $by; from here on the bundle holds payload $payload"
    [ -z "$trusted" ] || trusts "$actor" || untrusted_reseal="$untrusted_reseal $by"
    if jget "$e" addendum_sha256 "$STRING" details > /dev/null; then
      addenda="$addenda $(printf %06d "$i")"
    fi
  fi
  time=$(jget "$e" time "$STRING")
  if [ -n "$previous_time" ] && expr "$time" \< "$previous_time" > /dev/null; then
    warn "$e: its time, $time, is earlier than the event before ($previous_time)"
  fi
  if [ -n "$trusted" ] && ! trusts "$actor"; then
    warn "event $i is signed by $by, which is not in $trusted: its name is only a claim"
  fi
  previous=$(sha256 "$e") previous_time=$time i=$((i + 1))
done
[ "$events" -ge 1 ] && ok "$events events; the newest has SHA-256 $previous (compare with a receipt)"

step "7. payload.age is the payload the log arrived at"
if [ "$(sha256 payload.age)" = "$payload" ] &&
   [ "$(wc -c < payload.age | tr -d ' ')" = "$payload_size" ]; then
  ok "SHA-256 $payload, $payload_size bytes"
else
  fail "payload.age: its SHA-256 or size is not the seal's or the last 'resealed' event's"
fi

step "8. Decrypt the payload; it lists only files, folders and hard links, with the names of §4.2 and §4.6"
cd "$top" || exit 2
before=$problems decrypted=no unpacked=no
if [ -n "$identity" ]; then
  age -d -i "$identity" -o payload.tar outer/payload.age && decrypted=yes
elif [ -n "$passphrase" ]; then
  age -d -o payload.tar outer/payload.age && decrypted=yes  # age asks for the passphrase
else
  warn "no key given (-i or -p): the evidence itself is not checked"
fi
[ "$decrypted" = yes ] || [ -z "$identity$passphrase" ] || fail "age could not decrypt payload.age"
if [ "$decrypted" = yes ] && [ "$compression" = zstd ]; then  # format version 4
  # at most what the seal allows (§4.1), so that a few kilobytes cannot fill the disk; sizes
  # beyond any disk (up to 18 digits for total_bytes, 12 for each count) would overflow sh's
  # 64-bit arithmetic into a negative bound
  limit=$(jget outer/seal.json total_bytes '[0-9]+') && [ "${#limit}" -le 18 ] || limit=
  for count in files directories symlinks special errors changed skipped; do
    n=$(jget outer/seal.json "$count" '[0-9]+') && [ "${#n}" -le 12 ] && [ -n "$limit" ] &&
      limit=$((limit + 131072 * n)) || limit=
  done
  if [ -z "$limit" ]; then
    fail "seal.json: its total_bytes and counts bound what the payload may decompress to, and these are not sizes a disk holds"
    decrypted=no
  fi
fi
if [ "$decrypted" = yes ] && [ "$compression" = zstd ]; then
  limit=$((limit + 1073152 * events + 1090519040))
  mv payload.tar payload.tar.zst
  # one frame and nothing else (§4.1): zstd -d would skip a skippable frame's bytes unseen
  frames=$(zstd -l payload.tar.zst 2> /dev/null | awk 'NR == 2 && $1 ~ /^[0-9]+$/ && $2 ~ /^[0-9]+$/ { print $1 " " $2 }')
  case $frames in
    "1 0") ;;
    '') warn "zstd -l could not count the frames of the decrypted payload: it must be one zstd frame and nothing else" ;;
    *) fail "the decrypted payload is not one zstd frame and nothing else (zstd -l counts frames, then skippable ones: $frames)" ;;
  esac
  # the free space here (df -P -k: 1024-byte blocks, column 4): when the seal's bound is more,
  # count what the payload decompresses to, stopping once it would not fit, before writing it
  room=$(df -P -k . 2> /dev/null | awk 'NR == 2 && $4 ~ /^[0-9]+$/ && length($4) <= 15 { print $4 }')
  if [ -z "$room" ]; then
    warn "df could not tell the free space in $top: if payload.tar fills that disk, stop, make room, run again"
  elif [ "$limit" -gt $((room * 1024)) ]; then
    room=$((room * 1024))
    if [ "$({ zstd -d -q -c --memory=8MB payload.tar.zst 2> /dev/null || :; } | head -c $((room + 1)) | wc -c)" -gt "$room" ]; then
      fail "not enough free space to check the evidence: the payload decompresses to more than the $room bytes free in $top (its seal allows up to $limit); make room, or give a folder on a larger disk with -o"
      decrypted=no
    fi
  fi
  if [ "$decrypted" = yes ]; then
    { zstd -d -q -c --memory=8MB payload.tar.zst || echo failed > zstd.failed; } | head -c $((limit + 1)) > payload.tar
    if [ -f zstd.failed ] && [ "$(wc -c < payload.tar)" -le "$limit" ]; then
      fail "zstd could not decompress the decrypted payload"
      decrypted=no
    elif [ "$(wc -c < payload.tar)" -gt "$limit" ]; then
      fail "the payload decompresses to more than the $limit bytes that its seal allows (a decompression bomb, or a damaged bundle)"
      decrypted=no
    else
      ok "zstd -d: the decrypted payload decompressed ($(wc -c < payload.tar | tr -d ' ') bytes, at most $limit)"
    fi
  fi
  rm -f payload.tar.zst zstd.failed
fi
if [ "$decrypted" = yes ]; then
  tar -tvf payload.tar > payload.tv && tar -tf payload.tar > payload.names ||
    fail "the decrypted payload is not a tar that tar can list"
  cut -c1 payload.tv | paste -d ' ' - payload.names > payload.list
  if awk '
      function bad(why) { print "   FAILED: " why ": " name; n++ }
      { type = substr($0, 1, 1); name = substr($0, 3) }
      name ~ /^\// || name ~ /(^|\/)\.\.?(\/|$)/ { bad("an unsafe name"); next }
      name ~ /^addenda\// {
        after_bag = 1
        if (type != "-" || name !~ /^addenda\/[0-9][0-9][0-9][0-9][0-9][0-9]\.json(\.sig)?$/)
          bad("not an addendum of §4.6")
        next
      }
      after_bag { bad("after the addenda"); next }
      type == "-" && name ~ /^bag\/(bagit|manifest-sha256|bag-info|tagmanifest-sha256)\.txt$/ { next }
      type == "-" && name ~ /^bag\/evidencekit\/(manifest\.json(\.sig)?|incident\.json)$/ { next }
      (type == "-" || type == "h") && name ~ /^bag\/data\/.*[^\/]$/ { next }
      type == "d" && name ~ /^bag\/(data\/.*|data|evidencekit)?\/$/ { next }
      { bad("not a file, folder or hard link of the bag (tar type " type ")") }
      END { exit n > 0 }' payload.list; then
    ok "$(wc -l < payload.names | tr -d ' ') members, all regular files, folders or hard links under bag/ (and addenda/)"
  else
    fail "the payload holds members that are not those of §4.2 and §4.6 (listed above)"
  fi
  # a hard link's target: what follows its own name and " link to " (a name may hold those words)
  paste -d '\n' payload.names payload.tv | awk '
      NR % 2 { name = $0; next }
      substr($0, 1, 1) == "h" {
        target = substr($0, index($0, " " name " link to ") + length(name) + 10)
        if (target !~ /^bag\/data\/./) print target
      }' > bad.links
  [ ! -s bad.links ] || fail "hard links to something outside bag/data: $(cat bad.links)"
  sed 's,/$,,' payload.names | sort | uniq -d > twice
  [ ! -s twice ] || fail "members stored more than once: $(cat twice)"
  awk '/^addenda\// { print }' payload.names > addenda.names
  sort -c addenda.names 2> /dev/null || fail "the addenda are not in increasing order"
  if [ "$problems" -eq "$before" ] && mkdir payload && tar -xf payload.tar -C payload 2> tar.err; then
    unpacked=yes
    ok "unpacked into $top/payload"
  else
    fail "the payload was not unpacked: $(cat tar.err 2> /dev/null)"
  fi
  rm -f payload.tar
fi

step "9. The bag: every file listed once with its SHA-256, nothing else; its tag files"
if [ "$unpacked" = yes ] && cd "$top/payload/bag"; then
  printf 'BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n' | cmp -s - bagit.txt ||
    fail "bag/bagit.txt is not the one of §4.2"
  [ "$(sha256 manifest-sha256.txt)" = "$(jget ../../outer/seal.json manifest_root "$STRING")" ] ||
    fail "bag/manifest-sha256.txt: its SHA-256 is not the seal's manifest_root"
  # RFC 8493 percent-encoding (%25, %0A, %0D) undone, and written in sha256sum's own escaped
  # form (a line starting with \, then \\ \n \r) so that sha256sum -c checks every name
  : > "$top/files.listed"
  if LISTED=$top/files.listed awk '
      function escape(s,   r, i, c) {
        r = ""
        for (i = 1; i <= length(s); i++) {
          c = substr(s, i, 1)
          r = r (c == "\\" ? "\\\\" : c == "\n" ? "\\n" : c == "\r" ? "\\r" : c)
        }
        return r
      }
      substr($0, 65, 2) != "  " || substr($0, 1, 64) ~ /[^0-9a-f]/ || substr($0, 67, 5) != "data/" {
        print "   FAILED: not a line of §4.2: " $0 > "/dev/stderr"; bad = 1; next
      }
      {
        rest = substr($0, 67); path = ""
        while ((i = index(rest, "%")) > 0) {
          code = toupper(substr(rest, i + 1, 2))
          if (code == "25") c = "%"; else if (code == "0A") c = "\n"; else if (code == "0D") c = "\r"
          else { print "   FAILED: a % not followed by 25, 0A or 0D: " $0 > "/dev/stderr"; bad = 1 }
          path = path substr(rest, 1, i - 1) c
          rest = substr(rest, i + 3)
        }
        path = path rest
        print path > ENVIRON["LISTED"]
        if (path ~ /[\\\n\r]/) print "\\" substr($0, 1, 64) "  " escape(path)
        else print substr($0, 1, 64) "  " path
      }
      END { exit bad }' manifest-sha256.txt > "$top/manifest.check"; then
    if sha256sum -c "$top/manifest.check" > "$top/sha256sum.out" 2>&1; then
      ok "sha256sum -c: the $(wc -l < manifest-sha256.txt | tr -d ' ') files of manifest-sha256.txt are there, unchanged"
    else
      fail "files missing or changed: $(grep -v ': OK$' "$top/sha256sum.out")"
    fi
  else
    fail "bag/manifest-sha256.txt has lines that are not of §4.2"
  fi
  sort "$top/files.listed" > "$top/files.sorted"
  cut -c67- manifest-sha256.txt | sort | uniq -d > "$top/twice"
  [ ! -s "$top/twice" ] || fail "manifest-sha256.txt lists a file more than once: $(cat "$top/twice")"
  files=$(find data -type f -exec printf '%.0s.\n' {} + | wc -l | tr -d ' ')
  listed=$(wc -l < manifest-sha256.txt | tr -d ' ')
  [ "$files" = "$listed" ] && [ "$files" = "$(jget ../../outer/seal.json files '[0-9]+')" ] ||
    fail "bag/data holds $files files, manifest-sha256.txt lists $listed, the seal counts $(jget ../../outer/seal.json files '[0-9]+'): files were added or removed; not listed: $(find data -type f | sort | comm -23 - "$top/files.sorted")"
  find . ! -type f ! -type d > "$top/other"
  [ ! -s "$top/other" ] || fail "not a file or a folder: $(cat "$top/other")"
  { printf '%s\n' bagit.txt manifest-sha256.txt bag-info.txt evidencekit/manifest.json \
      evidencekit/manifest.json.sig
    [ ! -e evidencekit/incident.json ] || echo evidencekit/incident.json; } | sort > "$top/tags"
  cut -c67- tagmanifest-sha256.txt | sort | cmp -s - "$top/tags" ||
    fail "tagmanifest-sha256.txt does not list exactly the tag files of §4.2"
  sha256sum -c tagmanifest-sha256.txt > "$top/sha256sum.out" 2>&1 &&
    ok "sha256sum -c: the tag files are those of tagmanifest-sha256.txt" ||
    fail "tag files changed: $(grep -v ': OK$' "$top/sha256sum.out")"
  oxum="Payload-Oxum: $(jget ../../outer/seal.json total_bytes '[0-9]+').$(jget ../../outer/seal.json files '[0-9]+')"
  [ "$(grep -c '^Payload-Oxum:' bag-info.txt)" = 1 ] && grep -qx "$oxum" bag-info.txt ||
    fail "bag-info.txt: not '$oxum'"
  cd "$top" || exit 2
fi

step "10. manifest.json: named in the seal, signed by the sealer; the folders it lists, and no others"
if [ "$unpacked" = yes ] && cd "$top/payload/bag"; then
  m=evidencekit/manifest.json seal=../../outer/seal.json
  [ "$(sha256 $m)" = "$(jget $seal manifest_sha256 "$STRING")" ] ||
    fail "$m: its SHA-256 is not the seal's manifest_sha256"
  signed_by $m "$signer" "the manifest, by the sealer"
  one_document $m evidencekit.manifest || fail "$m is not one line of JSON of type evidencekit.manifest"
  [ "$(jget $m case_id "$STRING")" = "$case_id" ] || fail "$m: not the seal's case"
  for key in manifest_root total_bytes counts; do
    [ "$(jget $m $key '[0-9]+|"[0-9a-f]+"|[{][^{}]*[}]')" = "$(jget $seal $key '[0-9]+|"[0-9a-f]+"|[{][^{}]*[}]')" ] ||
      fail "$m: its $key is not the seal's"
  done
  incident=$(jget $m incident_sha256 "null|$STRING")
  if [ -z "$incident" ] || [ "$incident" = null ]; then
    [ ! -e evidencekit/incident.json ] || fail "evidencekit/incident.json is there, but manifest.json names none"
  elif [ ! -f evidencekit/incident.json ] || [ "$(sha256 evidencekit/incident.json)" != "$incident" ]; then
    fail "evidencekit/incident.json is missing or is not the one manifest.json names ($incident)"
  else
    ok "incident.json is the one manifest.json names"
  fi
  # Every folder that manifest.json lists as stored (kind "directory", not "skipped"), its
  # bag_path decoded from JSON, written as a shell command: folder 'data/…'
  : > "$top/folders.listed"
  LISTED=$top/folders.listed awk '
    BEGIN { for (i = 1; i < 128; i++) char[sprintf("%02x", i)] = sprintf("%c", i)
            q = sprintf("%c", 39) }
    function unjson(s,   out, i, c, h) {
      out = ""
      while ((i = index(s, "\\")) > 0) {
        out = out substr(s, 1, i - 1); c = substr(s, i + 1, 1)
        if (c == "u") {
          h = tolower(substr(s, i + 2, 4))
          if (substr(h, 1, 2) != "00" || !(substr(h, 3, 2) in char)) bad = 1
          else out = out char[substr(h, 3, 2)]
          s = substr(s, i + 6)
        } else {
          out = out (c == "n" ? "\n" : c == "t" ? "\t" : c == "r" ? "\r" : c == "b" ? "\b" : c == "f" ? "\f" : c)
          s = substr(s, i + 2)
        }
      }
      return out s
    }
    function quote(s,   n, part, out, i) {
      n = split(s, part, q); out = part[1]
      for (i = 2; i <= n; i++) out = out q "\\" q q part[i]
      return q out q
    }
    {
      n = split($0, part, /[{,]"bag_path":"/)
      for (i = 2; i <= n; i++) {
        match(part[i], /^([^"\\]|\\.)*/)
        path = unjson(substr(part[i], 1, RLENGTH)); rest = substr(part[i], RLENGTH + 1)
        if (!match(rest, /,"kind":"[a-z-]*"/) || substr(rest, RSTART + 9, RLENGTH - 10) != "directory") continue
        if (index(substr(rest, 1, RSTART), ",\"error\":\"skipped")) continue
        if (path !~ /^data\// || path ~ /(^|\/)\.\.?(\/|$)/) bad = 1
        print "folder " quote(path)
        print path > ENVIRON["LISTED"]
      }
    }
    END { exit bad }' $m > "$top/folders.sh" || fail "$m: a folder name that cannot be right"
  sort "$top/folders.listed" > "$top/folders.sorted"
  folder() {
    listed=$((listed + 1))
    [ -d "$1" ] && [ ! -h "$1" ] || fail "folder $1 (listed in manifest.json) is not in the payload"
  }
  listed=0
  . "$top/folders.sh"
  found=$(( $(find data -type d -exec printf '%.0s.\n' {} + | wc -l) - 1 ))
  if [ "$found" -eq "$listed" ] && [ "$listed" = "$(jget $seal directories '[0-9]+')" ]; then
    ok "the $listed folders manifest.json lists are there, and no others"
  else
    fail "bag/data holds $found folders, manifest.json lists $listed: folders were added or removed; not listed: $(find data -type d | sed 1d | sort | comm -23 - "$top/folders.sorted")"
  fi
  cd "$top" || exit 2
fi

step "11. Addenda (§4.6): each signed by its resealer and named by that 'resealed' event"
if [ "$unpacked" = yes ] && cd "$top/payload"; then
  for a in addenda/*.json; do
    [ -e "$a" ] || continue
    n=${a#addenda/} n=${n%.json}
    e=$top/outer/custody/$n.json
    if [ -f "$e" ] && [ "$(jget "$e" addendum_sha256 "$STRING" details)" = "$(sha256 "$a")" ]; then
      ok "$a is the addendum that custody event $n names"
    else
      fail "$a is not named by a 'resealed' custody event $n (addendum_sha256)"
    fi
    one_document "$a" evidencekit.addendum || fail "$a is not one line of JSON of type evidencekit.addendum"
    author=$(jget "$a" public_key "$STRING")
    [ -f "$e" ] && [ "$author" = "$(jget "$e" public_key "$STRING")" ] ||
      fail "$a: its author is not the actor of custody event $n"
    if is_key "$author"; then signed_by "$a" "$author" "addendum $n, by its author"
    else fail "$a: author.public_key is not an ssh-ed25519 key"; fi
  done
  for n in $addenda; do
    [ -f "addenda/$n.json" ] || fail "custody event $n names an addendum that the payload does not hold"
  done
  [ -n "$addenda" ] || [ -e addenda ] || ok "none"
  cd "$top" || exit 2
  [ "$problems" -eq "$before" ] && checked_payload=yes
fi

step "Verdict"
if [ -n "$untrusted_reseal" ]; then
  if [ "$checked_payload" = yes ]; then
    warn "resealed by a key not in $trusted ($untrusted_reseal), but the payload is exactly what the sealer signed"
  else
    fail "resealed by a key not in $trusted ($untrusted_reseal), and the payload was not checked against the sealer's manifest"
  fi
fi
if [ "$problems" -gt 0 ]; then
  printf 'VERIFICATION FAILED: %s problem(s):%s\n' "$problems" "$failures"
elif [ "$checked_payload" = yes ]; then
  printf 'VERIFIED BY HAND (%s warning(s)): the evidence in %s is what %s sealed.\n' \
    "$warnings" "$top/payload/bag/data" "$sealer"
else
  printf 'PUBLIC PARTS VERIFIED BY HAND (%s warning(s)); the evidence itself was not checked.\n' "$warnings"
fi
[ "$problems" -eq 0 ]

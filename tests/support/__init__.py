"""Helpers shared by test modules, imported as a library (a conftest never is; conftests hold
fixtures and hooks only, and tests/conftest.py makes the shared ones of fixtures.py visible to
every test).

cli.py       the command run in this process (invoke) or as a real process (run_cli)
env.py       a test's own user: no real ~/.config, no inherited EVIDENCEKIT_* settings
keys.py      key files generated in the test (make_keys)
fixtures.py  user, home, isolated_environment (per module), keys, tree, bundle
terminal.py  a tool run on a pseudo-terminal, its passphrase prompts answered; evidencekit
             on one to expect and answer its prompts (evidencekit_on_a_pty, pexpect)
tools.py     real tools and root-only tricks: skip locally, fail in CI (skip_or_fail)
schemas.py   documents checked against docs/schemas
craft.py     hostile bundles built by hand (also the fuzzers' seeds); hostile.py runs them
bundles.py   a bundle's outer tar taken apart and rebuilt; by_hand.py: FORMAT.md §7.2 run by hand
trees.py, victim.py, fraud_case.py, sealed.py, html.py: evidence and cases for the suites
tars.py      tars made for tests (tarfile's, or with evidencekit's member headers)
web_capture.py capture --url run as the real command, its bundle verified and extracted
tsa_server.py a real RFC 3161 TSA (openssl ts -reply) on 127.0.0.1; mounts.py exFAT, FAT32 and
              tmpfs mounted for a test on a loop device, unmounted whatever happens
"""

"""evidencekit key …: key pairs, which sign (custody, seals) and open bundles made for them."""

from __future__ import annotations

from pathlib import Path

import click

from evidencekit.cli import render
from evidencekit.cli.app import cli, json_option, output_option, refuse_stdout, run
from evidencekit.cli.keyring import generate_key_files
from evidencekit.cli.options import FILE_PATH
from evidencekit.cli.secrets import KEY_PASSPHRASE_ENV, obtain
from evidencekit.errors import ExitCode


@cli.group(short_help="Create key pairs: to sign, and to open bundles made for you.")
def key() -> None:
    """Create key pairs (OpenSSH ed25519).

    One key pair does both jobs: the private key signs what you do (--sign-key) and opens
    bundles made for you (-i KEY); others encrypt bundles for you with the public key
    (KEY.pub, given to them for -R).
    """


@key.command("generate")
@output_option("Where to write the private key; the public key goes to OUTPUT.pub.")
@click.option("--comment", default=None,
              help="The key's name, e.g. your own (default: user@host): what you sign with it "
              "is in this name unless --actor says otherwise.")
@click.option("--passphrase-file", type=FILE_PATH,
              help="Protect the key with the passphrase in this file.")
@click.option("--ask-passphrase", is_flag=True, help="Ask for a passphrase on the terminal.")
@json_option
def key_generate(output: Path, comment: str | None, passphrase_file: Path | None,
                 ask_passphrase: bool, as_json: bool) -> None:
    """Make a new key pair: OUTPUT (private) and OUTPUT.pub (public).

    Sign with it (--sign-key OUTPUT), open bundles made for it (-i OUTPUT), and give
    OUTPUT.pub to whoever should encrypt bundles for you (-R OUTPUT.pub). Never overwrites;
    never prompts unless asked.
    """

    def body() -> int:
        refuse_stdout(output, "a key pair")
        secret = None
        if passphrase_file or ask_passphrase:
            secret = obtain("the new key", passphrase_file, KEY_PASSPHRASE_ENV,
                            "--passphrase-file", confirm=True)
        signing = generate_key_files(output, comment, secret)
        if as_json:
            render.emit_json({"command": "key generate", "ok": True, "exit_code": 0,
                              "private_key": str(output), "public_key": f"{output}.pub",
                              "fingerprint": signing.public.fingerprint,
                              "public_key_line": signing.public.openssh_line()})
        else:
            render.out.print(f"Wrote {output} (private, keep it safe) and {output}.pub")
            render.out.print(f"Fingerprint: {signing.public.fingerprint}")
        return ExitCode.OK

    run("key generate", as_json, body)



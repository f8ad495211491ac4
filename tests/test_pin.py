"""PIN hashing: stored hashed, verified in constant time, malformed hashes refused."""

import subprocess
import sys
from pathlib import Path

from supervisor.interfaces.pin import hash_pin, verify_pin


def test_hash_verifies_only_the_right_pin_and_is_salted() -> None:
    stored = hash_pin("1234", iterations=1000)
    assert verify_pin("1234", stored)
    assert not verify_pin("1235", stored)
    assert hash_pin("1234", iterations=1000) != stored  # a fresh salt each time
    assert "1234" not in stored


def test_malformed_hash_never_verifies() -> None:
    for bad in ("", "1234", "md5$1$x$y", "pbkdf2_sha256$x$y$z"):
        assert not verify_pin("1234", bad)


def test_mcwctl_hash_pin() -> None:
    mcwctl = Path(sys.executable).parent / "mcwctl"
    out = subprocess.run([str(mcwctl), "hash-pin"], input="2580\n", capture_output=True,
                         text=True, check=True).stdout.strip()
    assert verify_pin("2580", out)
    bad = subprocess.run([str(mcwctl), "hash-pin"], input="12\n", capture_output=True, text=True)
    assert bad.returncode == 2 and "4 to 8 digits" in bad.stderr

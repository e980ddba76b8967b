"""Leaked-key reports signed by Python's `cryptography`, as GitHub signs them.

Makes a P-256 key pair, starts the `leaks` example (its binary given as the first argument)
trusting the public half as `python-key`, reads the customer key the example prints, then:

- a report of it signed with another key is refused (401) and the key still works;
- the report signed with the trusted key is answered `true_positive` with the token's SHA-256,
  and the key is refused from then on (401);
- the same report again is answered the same (GitHub retries).

Prints one line per check and a count last; exits non-zero on any failure.
"""

import base64
import hashlib
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url, method="GET", headers=None, body=None):
    req = urllib.request.Request(url, data=body.encode() if body else None, method=method)
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def sign(key, body):
    return base64.b64encode(key.sign(body.encode(), ec.ECDSA(hashes.SHA256()))).decode()


def main():
    binary = sys.argv[1]
    trusted = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    pem = trusted.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    port = free_port()
    env = {
        "PORT": str(port),
        "PATH": "/usr/bin:/bin",
        "LEAKS_TRUSTED_KEY": pem,
        "LEAKS_TRUSTED_KEY_ID": "python-key",
    }
    server = subprocess.Popen([binary], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    passed, failed = 0, 0

    def check(ok, what):
        nonlocal passed, failed
        print(("ok: " if ok else "FAILED: ") + what, flush=True)
        if ok:
            passed += 1
        else:
            failed += 1

    try:
        customer = None
        deadline = time.time() + 60
        while customer is None and time.time() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            if "The customer key" in line:
                customer = line.split()[-1]
        if customer is None:
            print("FAILED: the example printed no customer key", flush=True)
            return 1
        base = f"http://127.0.0.1:{port}"
        data = lambda: request(f"{base}/data", headers={"x-api-key": customer})[0]
        check(data() == 200, "the customer key works before the report")

        body = json.dumps(
            [{"token": customer, "type": "leak_api_key", "url": "https://github.com/o/r/blob/main/a.py", "source": "content"}],
            separators=(",", ":"),
        )
        endpoint = f"{base}/github/secret-scanning"
        status, _ = request(endpoint, "POST", {
            "Github-Public-Key-Identifier": "python-key",
            "Github-Public-Key-Signature": sign(other, body),
            "content-type": "application/json",
        }, body)
        check(status == 401, f"a report signed with another key is refused (got {status})")
        check(data() == 200, "and the key still works")

        headers = {
            "Github-Public-Key-Identifier": "python-key",
            "Github-Public-Key-Signature": sign(trusted, body),
            "content-type": "application/json",
        }
        status, answer = request(endpoint, "POST", headers, body)
        expected = [{
            "token_hash": hashlib.sha256(customer.encode()).hexdigest(),
            "token_type": "leak_api_key",
            "label": "true_positive",
        }]
        check(status == 200 and json.loads(answer) == expected, f"the signed report is a true positive (got {status} {answer})")
        check(data() == 401, "the leaked key is refused from then on")
        check(customer not in answer, "the answer never holds the key")
        status, again = request(endpoint, "POST", headers, body)
        check(status == 200 and json.loads(again) == expected, "the same report again is answered the same")
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"secret scanning interop: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Signed webhooks against the reference implementation of Standard Webhooks, and Svix's.

Starts the `webhooks` example (its binary given as the first argument) with its demo secret,
then, with the `standardwebhooks` and `svix` packages from PyPI:

- signs deliveries the way a real sender does and posts them to the example's Standard
  Webhooks route: a valid one is accepted (200), the same body changed is refused (401), the same
  delivery sent again is refused as replayed (409), one signed ten minutes ago is refused as
  stale (401);
- verifies the delivery our signer made, which the example prints as a ready `curl` line;
- signs with Svix's library and sends Svix's own `svix-*` header names: accepted.

Prints one line per check and a count last; exits non-zero on any failure.
"""

import json
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

from standardwebhooks.webhooks import Webhook
from svix.webhooks import Webhook as SvixWebhook


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, headers, body):
    request = urllib.request.Request(url, data=body.encode(), method="POST")
    for name, value in headers.items():
        request.add_header(name, value)
    request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def main():
    binary = sys.argv[1]
    port = free_port()
    env = {"PORT": str(port), "PATH": "/usr/bin:/bin"}
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
        lines = []
        deadline = time.time() + 30
        while time.time() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "curl -i" in line:
                break
        output = "".join(lines)
        secret = re.search(r"(whsec_[A-Za-z0-9+/=]+)", output).group(1)
        curl = next(line.strip() for line in lines if "curl -i" in line)
        url = f"http://127.0.0.1:{port}/webhooks/standard"
        reference = Webhook(secret)

        # Our signer, verified by the reference implementation.
        words = shlex.split(curl)
        headers = {}
        body = None
        for flag, value in zip(words, words[1:]):
            if flag == "-H":
                name, _, text = value.partition(": ")
                headers[name] = text
            if flag == "-d":
                body = value
        try:
            reference.verify(body, headers)
            check(True, "standardwebhooks verifies the delivery our signer made")
        except Exception as error:  # noqa: BLE001
            check(False, f"standardwebhooks refuses our signature: {error}")

        # The reference signer, verified by the example.
        def delivery(msg_id, when, payload):
            signature = reference.sign(msg_id, when, payload)
            return {
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(when.timestamp())),
                "webhook-signature": signature,
            }

        now = datetime.now(tz=timezone.utc)
        payload = json.dumps({"type": "invoice.paid", "amount": 4200})
        signed = delivery("msg_interop_1", now, payload)
        status, text = post(url, signed, payload)
        check(status == 200 and "invoice.paid" in text, f"a reference-signed delivery is accepted ({status})")
        status, _ = post(url, signed, payload.replace("4200", "9900"))
        check(status == 401, f"the same signature on a changed body is refused ({status})")
        status, text = post(url, signed, payload)
        check(status == 409 and "replayed" in text, f"the same delivery again is refused as replayed ({status})")
        stale = delivery("msg_interop_2", now - timedelta(minutes=10), payload)
        status, text = post(url, stale, payload)
        check(status == 401 and "stale_timestamp" in text, f"a delivery signed ten minutes ago is refused ({status})")
        status, text = post(url, {}, payload)
        check(status == 401 and "missing_signature" in text, f"an unsigned delivery is refused ({status})")

        # Svix, as its senders send: its signer and its own header names.
        svix = SvixWebhook(secret)
        svix_payload = json.dumps({"type": "invoice.paid", "amount": 1300})
        svix_headers = {
            "svix-id": "msg_interop_svix",
            "svix-timestamp": str(int(now.timestamp())),
            "svix-signature": svix.sign("msg_interop_svix", now, svix_payload),
        }
        status, text = post(url, svix_headers, svix_payload)
        check(status == 200 and "invoice.paid" in text, f"a svix-signed delivery with svix-* headers is accepted ({status})")
        status, text = post(url, svix_headers, svix_payload)
        check(status == 409 and "replayed" in text, f"the same svix delivery again is refused as replayed ({status})")
        try:
            svix.verify(body, headers)
            check(True, "svix verifies the delivery our signer made")
        except Exception as error:  # noqa: BLE001
            check(False, f"svix refuses our signature: {error}")
        check(secret not in text, "no answer holds the secret")
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"interop checks: {passed} ok, {failed} failing")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

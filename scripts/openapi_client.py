#!/usr/bin/env python3
"""The quickstart called through a client generated from its own OpenAPI document.

    python scripts/openapi_client.py <generated package dir> <openapi.json> <base URL> <key>

The package is what `openapi-python-client generate --meta none` makes of the document. Every
operation that needs no argument but the client is called without a key, with a wrong key and
with `key`; each answer's status must be one the document lists for it, and the generated
client must parse it: every refusal into the problem model the document names (type, title,
status and detail, as the body says), a key's record into its model with `expires_at` and `last_used` as
date-times. Exits 1 on the first answer a client written from the document could not read.
"""

import datetime
import importlib
import inspect
import json
import os
import pkgutil
import sys


def main():
    package_dir, document_path, base, key = sys.argv[1:5]
    document = json.load(open(document_path, encoding="utf-8"))
    sys.path.insert(0, os.path.dirname(os.path.abspath(package_dir)))
    package = importlib.import_module(os.path.basename(os.path.normpath(package_dir)))
    client_module = importlib.import_module(f"{package.__name__}.client")
    operations = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            operations[operation["operationId"]] = (method.upper(), path, operation)

    api = importlib.import_module(f"{package.__name__}.api")
    modules = [
        importlib.import_module(name)
        for _, name, is_package in pkgutil.walk_packages(api.__path__, f"{api.__name__}.")
        if not is_package
    ]
    # Reads first, then changes, the revocation last: it ends the key's life.
    order = {"GET": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 2}

    def rank(module):
        operation_id = module.__name__.rsplit(".", 1)[1]
        for op_id, (method, _, _) in operations.items():
            if op_id.replace("-", "_").lower() == operation_id:
                return (order.get(method, 1), operation_id)
        return (1, operation_id)

    called = problems = 0
    failures = []
    for module in sorted(modules, key=rank):
        operation_id = module.__name__.rsplit(".", 1)[1]
        found = next(
            (op for op_id, op in operations.items() if op_id.replace("-", "_").lower() == operation_id),
            None,
        )
        if found is None:
            failures.append(f"{operation_id}: not in the document")
            continue
        method, path, operation = found
        parameters = inspect.signature(module.sync_detailed).parameters
        required = [
            name
            for name, parameter in parameters.items()
            if name != "client" and parameter.default is inspect.Parameter.empty
        ]
        if required:
            continue  # needs arguments (a path parameter, a body): not called blind
        documented = set(operation["responses"])
        for sent in (None, "wrong_" + key[6:], key):
            headers = {} if sent is None else {"x-api-key": sent}
            client = client_module.Client(base_url=base, headers=headers, raise_on_unexpected_status=False)
            response = module.sync_detailed(client=client)
            status = int(response.status_code)
            called += 1
            where = f"{method} {path} ({'no key' if sent is None else 'a key'} {status})"
            if str(status) not in documented:
                failures.append(f"{where}: the document lists {sorted(documented)}")
                continue
            parsed = response.parsed
            if status >= 400:
                body = json.loads(response.content)
                members = ("type_", "title", "status", "detail")
                if not all(hasattr(parsed, member) for member in members):
                    failures.append(f"{where}: parsed as {type(parsed).__name__}, not a problem")
                    continue
                if (parsed.type_, parsed.title, parsed.status, parsed.detail) != (
                    body["type"], body["title"], body["status"], body["detail"],
                ):
                    failures.append(f"{where}: the model differs from the body {body}")
                problems += 1
            elif parsed is not None and hasattr(parsed, "expires_at"):
                for field in ("expires_at", "last_used"):
                    value = getattr(parsed, field, None)
                    if value is not None and type(value).__name__ != "Unset" and not isinstance(
                        value, datetime.datetime
                    ):
                        failures.append(f"{where}: {field} parsed as {type(value).__name__}")
    if problems == 0:
        failures.append("no refusal was parsed: nothing was checked")
    for failure in failures:
        print(failure)
    print(f"generated client: {called} calls, {problems} refusals parsed into the problem model")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

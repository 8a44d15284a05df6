"""Validates Kubernetes manifests offline against the API's schema as the official Python
client carries it (the `kubernetes` package's models are generated from the OpenAPI spec):
every key must be a field of its type (strict: an unknown or misspelt key is an error), every
value of the field's type, and every required field present (the models' own checks).

    python3 validate_k8s.py MANIFEST.yaml [SAME.json]

With a JSON file, also checks that the YAML reads as exactly that value. Prints one line per
problem and exits 1 when there is any; prints the objects checked and exits 0 otherwise.
"""
import json
import re
import sys

import kubernetes.client as k8s
import yaml

KINDS = {("batch/v1", "Job"): "V1Job", ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim"}
PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object}


def check(value, type_name, path, problems):
    # The client spells containers list[T] / dict(str, T) or List[T] / Dict[str, T] by version.
    m = re.match(r"[lL]ist\[(.+)\]$", type_name)
    if m:
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            check(item, m.group(1), f"{path}[{i}]", problems)
        return
    m = re.match(r"(?:dict\(|Dict\[)(\w+), (.+)[)\]]$", type_name)
    if m:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a mapping, got {type(value).__name__}")
            return
        for k, v in value.items():
            check(v, m.group(2), f"{path}.{k}", problems)
        return
    if type_name in PRIMITIVES:
        expected = PRIMITIVES[type_name]
        if type_name == "int" and isinstance(value, bool) or not isinstance(value, expected):
            problems.append(f"{path}: expected {type_name}, got {type(value).__name__} ({value!r})")
        return
    model = getattr(k8s, type_name)
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a {type_name} mapping, got {type(value).__name__}")
        return
    by_key = {json_key: attr for attr, json_key in model.attribute_map.items()}
    for key, v in value.items():
        if key not in by_key:
            problems.append(f"{path}.{key}: not a field of {type_name}")
            continue
        check(v, model.openapi_types[by_key[key]], f"{path}.{key}", problems)


def main():
    manifest = sys.argv[1]
    with open(manifest) as f:
        documents = [d for d in yaml.safe_load_all(f) if d is not None]
    problems = []
    if len(sys.argv) > 2:
        with open(sys.argv[2]) as f:
            expected = json.load(f)
        if documents != [expected]:
            problems.append(f"{manifest}: the YAML does not read as the same value as {sys.argv[2]}")
    checked = []
    client = k8s.ApiClient()
    for i, doc in enumerate(documents):
        kind = (doc.get("apiVersion"), doc.get("kind"))
        if kind not in KINDS:
            problems.append(f"document {i}: unknown kind {kind}")
            continue
        check(doc, KINDS[kind], doc["kind"], problems)
        # The models' constructors refuse missing required fields (container name, job template, ...).
        try:
            client._ApiClient__deserialize(doc, KINDS[kind])
        except Exception as e:  # pydantic or ValueError, by client version
            problems.append(f"{doc['kind']}: {e}")
        checked.append(f"{doc['kind']} {doc.get('metadata', {}).get('name', '?')}")
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print("valid:", ", ".join(checked))


if __name__ == "__main__":
    main()

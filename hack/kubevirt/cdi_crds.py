"""Print CDI's CustomResourceDefinitions as one YAML stream.

CDI's crd-generator writes every CRD it installs into pkg/operator/resources/crds_generated.go
as `var CDICRDs map[string]string{"name": <Go string expression>, ...}`; this reads that
generated file from the Go module cache, so the CRDs are CDI's own, not copies written by hand.
A value is raw strings joined by `+` with interpreted ones (a backtick cannot sit in a raw
string, so the generator writes it as "`").
"""

import json
import re
import sys

source = open(sys.argv[1], encoding="utf-8").read()
body = source[source.index("map[string]string{") + len("map[string]string{") :]
token = re.compile(r'\s*(?:(`[^`]*`)|("(?:[^"\\]|\\.)*")|(\+)|(:)|(,)|(\}))', re.DOTALL)
documents: dict[str, str] = {}
key: str | None = None
parts: list[str] = []
position = 0
while True:
    match = token.match(body, position)
    if match is None:
        sys.exit(f"cannot parse {sys.argv[1]} near: {body[position:position + 80]!r}")
    position = match.end()
    raw, quoted, _plus, colon, comma, close = match.groups()
    if raw is not None:
        parts.append(raw[1:-1])
    elif quoted is not None:
        parts.append(json.loads(quoted))
    elif colon:
        key, parts = "".join(parts), []
    elif comma or close:
        if key is not None:
            documents[key] = "".join(parts)
        key, parts = None, []
        if close:
            break
if not documents:
    sys.exit(f"no CRDs found in {sys.argv[1]}")
for name, document in sorted(documents.items()):
    print(f"# CDI CRD {name}\n---")
    print(document.strip())

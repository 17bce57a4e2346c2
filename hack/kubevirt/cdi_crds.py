"""Print CDI's CustomResourceDefinitions as one YAML stream.

CDI's crd-generator writes every CRD it installs into pkg/operator/resources/crds_generated.go
as `var CDICRDs map[string]string{"name": `<yaml>`, ...}`; this reads that generated file from
the Go module cache, so the CRDs are CDI's own, not copies written by hand.
"""

import re
import sys

source = open(sys.argv[1], encoding="utf-8").read()
documents = re.findall(r'^\t"([a-z0-9]+)": `(.*?)`,?$', source, flags=re.DOTALL | re.MULTILINE)
if not documents:
    sys.exit(f"no CRDs found in {sys.argv[1]}")
for name, document in sorted(documents):
    print(f"# CDI CRD {name}\n---")
    print(document.strip())

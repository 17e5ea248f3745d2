"""Print the ``nvidia-*`` wheels that pip's resolution of torch would install, one
``name==version`` per line, from pip's installation report (``pip install --dry-run --report
FILE``). The detect image installs them in a layer of their own before torch (see Dockerfile)."""

import json
import sys

with open(sys.argv[1], encoding="utf-8") as report:
    for item in json.load(report)["install"]:
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        if name.lower().startswith("nvidia-"):
            print(f"{name}=={version}")

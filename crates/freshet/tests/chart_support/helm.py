"""Real Helm (the Go SDK, through the PyPI package helm-python-sdk) for the chart
tests. Reads one JSON request on stdin, writes one JSON answer on stdout:

  {"op": "render", "chart": DIR, "values": {...}, "name": N, "namespace": NS}
      -> {"templates": {path: [object, ...]}, "notes": TEXT} or {"error": TEXT}
  {"op": "lint", "chart": DIR, "values": {...}}  -> helm's lint report
  {"op": "parse", "yaml": TEXT}                   -> [object, ...] (multi-document)

Objects are parsed with Helm's own YAML reader. It decides nothing: the tests do.
"""

import json
import re
import sys

import helm_python as helm


def documents(text):
    """The non-empty YAML documents of `text`, parsed."""
    out = []
    for doc in re.split(r"^---\s*$", text, flags=re.M):
        body = "\n".join(l for l in doc.splitlines() if not l.lstrip().startswith("#"))
        if body.strip():
            out.append(helm.values_from_yaml(doc))
    return out


def main():
    req = json.load(sys.stdin)
    op = req["op"]
    if op == "parse":
        return documents(req["yaml"])
    if op == "lint":
        return helm.lint(req["chart"], req.get("values") or {}, strict=True)
    chart = helm.Chart.load(req["chart"])
    try:
        rendered = chart.render(
            req.get("values") or {},
            name=req["name"],
            namespace=req["namespace"],
            is_install=True,
        )
    except helm.HelmError as e:
        return {"error": str(e)}
    notes = ""
    templates = {}
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            notes = text
        else:
            templates[path] = documents(text)
    return {"templates": templates, "notes": notes}


if __name__ == "__main__":
    json.dump(main(), sys.stdout)

"""Pull fenced code blocks out of one '## ' section of docs/ENGINES.md."""
import os
import re

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "ENGINES.md")

def blocks(section, lang, doc=DOC):
    text = open(doc).read()
    m = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert m, f"no section {section}"
    return re.findall(rf"^```{lang}\n(.*?)^```", m.group(1), re.S | re.M)

def statements(block):
    out = []
    for stmt in block.split(";\n"):
        lines = [l for l in stmt.splitlines() if not l.strip().startswith("--")]
        s = "\n".join(lines).strip().rstrip(";")
        if s:
            out.append(s)
    return out

"""CI check: every claim judged in more than one of the given report.json files has the same
verdict line in each (a full session, a -k selection and `pneumobench report` on one store)."""

import json
import sys

from pneumobench.judging.verdicts import verdict_line

reports = {path: {r["claim"]: verdict_line(r) for r in json.load(open(path))["claims"]} for path in sys.argv[1:]}
first, *others = reports
differences = [
    f"{claim}:\n  {first}: {reports[first][claim]}\n  {path}: {line}"
    for path in others for claim, line in reports[path].items() if reports[first].get(claim) != line
]
if differences:
    sys.exit("verdicts differ between runs on one store:\n" + "\n".join(differences))
print(f"same verdicts in {len(reports)} reports ({', '.join(f'{len(v)} claims' for v in reports.values())})")

"""Small competitions in MLE-bench's prepared layout, built from datasets that ship with packages.

Layout: `<dir>/public/` (description.md, train.csv, test.csv, sample_submission.csv)
and `<dir>/private/answers.csv`. The agent only ever sees `public/`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

BREAST_CANCER_DESCRIPTION = """# Breast Cancer Diagnosis

## Overview
Fine-needle aspirates of breast masses were digitised and described by thirty numeric features
of the cell nuclei (radius, texture, perimeter, area, smoothness and so on). Your task is to
predict whether each mass is malignant.

## Evaluation
Submissions are evaluated on the area under the ROC curve between the predicted probability
and the observed target.

## Submission File
For each `id` in the test set, predict the probability that the mass is malignant (`target` = 1).
The file should contain a header and have the following format:

```
id,target
0,0.5
1,0.5
```

## Data
- `train.csv`: the training set, with the `target` column (1 = malignant, 0 = benign).
- `test.csv`: the test set, without `target`.
- `sample_submission.csv`: a sample submission in the correct format.
"""


def build_breast_cancer(root: Path, *, seed: int = 0) -> Path:
    """Write the competition under `root` and return its public folder."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace(" ", "_"))
    frame["target"] = 1 - frame["target"]  # sklearn codes malignant as 0; the task predicts malignancy
    frame.insert(0, "id", np.arange(len(frame)))
    train, test = train_test_split(frame, test_size=0.25, random_state=seed, stratify=frame["target"])
    public, private = root / "public", root / "private"
    public.mkdir(parents=True, exist_ok=True)
    private.mkdir(parents=True, exist_ok=True)
    train.to_csv(public / "train.csv", index=False)
    test.drop(columns=["target"]).to_csv(public / "test.csv", index=False)
    pd.DataFrame({"id": test["id"], "target": 0.5}).to_csv(public / "sample_submission.csv", index=False)
    test[["id", "target"]].to_csv(private / "answers.csv", index=False)
    (public / "description.md").write_text(BREAST_CANCER_DESCRIPTION, encoding="utf-8")
    return public

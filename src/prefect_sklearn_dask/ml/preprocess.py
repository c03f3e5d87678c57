"""The preprocessing each classifier gets, so raw CSV rows can go straight in.

Numeric columns are imputed (median) and, for scale-sensitive models, standardised;
text, categorical and boolean columns are imputed (most frequent) and one-hot
encoded, ignoring categories unseen at fit time.
"""

from __future__ import annotations

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def split_columns(X: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Numeric and categorical column names (booleans count as categorical)."""
    numeric = [
        c
        for c in X.columns
        if pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c])
    ]
    categorical = [c for c in X.columns if c not in numeric]
    return numeric, categorical


def make_preprocessor(X: pd.DataFrame, scale: bool) -> ColumnTransformer:
    """A column transformer fitted per model, shipped inside the persisted pipeline."""
    numeric, categorical = split_columns(X)
    numeric_steps = [SimpleImputer(strategy="median")] + ([StandardScaler()] if scale else [])
    transformers = [("numeric", make_pipeline(*numeric_steps), numeric)]
    if categorical:
        encode = make_pipeline(
            SimpleImputer(strategy="most_frequent"),
            OneHotEncoder(handle_unknown="ignore", sparse_output=False, max_categories=50),
        )
        transformers.append(("categorical", encode, categorical))
    return ColumnTransformer(transformers, verbose_feature_names_out=False)


def make_model_pipeline(X: pd.DataFrame, classifier, scale: bool) -> Pipeline:
    """Preprocessing + classifier as one estimator: what is fitted, scored and saved."""
    return Pipeline([("preprocess", make_preprocessor(X, scale)), ("classifier", classifier)])

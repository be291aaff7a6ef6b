"""Hashes that decide when two candidates are the same program.

The search proposes many programs that differ only in comments, docstrings or layout; they
compile to the same kernel, so they share one ``code_hash`` and are stored once per run.
"""

from __future__ import annotations

import ast
import hashlib


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    # A def or class of only a docstring still needs a statement to stay valid.
                    node.body = body[1:] or ([] if isinstance(node, ast.Module) else [ast.Pass()])


def normalize_code(source: str) -> str:
    """The canonical text of ``source``: ``ast.unparse`` without docstrings (comments, blank
    lines and formatting never survive parsing). Text that does not parse is compared with its
    whitespace collapsed, so a broken candidate still de-duplicates against its reformatting."""
    try:
        tree = ast.parse(source)
        _strip_docstrings(tree)
        return ast.unparse(tree)
    except (SyntaxError, ValueError, RecursionError):
        return " ".join(source.split())


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_hash(source: str) -> str:
    """Hash of the exact text, as stored."""
    return _sha256(source)


def code_hash(source: str) -> str:
    """Hash of the normalized code: equal for programs that differ only in comments or layout."""
    return _sha256(normalize_code(source))

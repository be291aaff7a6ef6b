from archive import code_hash, content_hash, normalize_code


def test_comments_docstrings_and_layout_do_not_change_the_code_hash() -> None:
    plain = "def f(x):\n    return x + 1\n"
    noisy = (
        '"""Module doc."""\n\n# a comment\n\n'
        "def f( x ):\n"
        '    """Adds one."""\n'
        "    # why\n\n"
        "    return (x+1)  # trailing\n"
    )
    assert code_hash(noisy) == code_hash(plain)
    assert content_hash(noisy) != content_hash(plain)


def test_a_change_in_code_changes_the_code_hash() -> None:
    assert code_hash("x = 1\n") != code_hash("x = 2\n")
    assert code_hash("s = 'a # not a comment'\n") != code_hash("s = 'a'\n")


def test_a_body_of_only_a_docstring_normalizes_to_valid_python() -> None:
    normalized = normalize_code('def f():\n    """Nothing yet."""\n')
    compile(normalized, "<normalized>", "exec")
    assert normalized == normalize_code("def f():\n    pass\n")


def test_source_that_does_not_parse_is_compared_with_whitespace_collapsed() -> None:
    broken = "def f(:\n    return   1\n"
    assert normalize_code(broken) == "def f(: return 1"
    assert code_hash(broken) == code_hash("def f(:  return 1")

# base: seed
# expect static: rejected compile "leaked"
# expect runtime: rejected compile "leaked"
# expect gpu: rejected compile "leaked"
# Reads whatever host files it can name (through builtins reached by name: no `open` in sight)
# and puts them into its exception text, which lands in the archive and in models' prompts.
# The sandbox's root holds none of them. {MARKER} is a file the test leaves in the user's home.
_find = torch._utils._import_dotted_name
_open, _listdir = _find("builtins.open"), _find("os.listdir")


def _grab(path):
    try:
        with _open(path) as f:
            return f.read(200)
    except Exception as e:
        return str(e)[:80]


def forward(q, k, v, causal, sm_scale):
    found = {p: _grab(p) for p in ("{MARKER}", "/etc/hostname", "/etc/shadow", "/etc/passwd", "/root/.bash_history")}
    for d in ("/root", "/home", "/work", "/"):
        try:
            found[d] = _listdir(d)
        except Exception as e:
            found[d] = str(e)[:80]
    raise RuntimeError(f"leaked: {found}")

# base: seed
# expect gpu: rejected sweep "NaN"
# Rewrites the plan its own process hands back: each launch keeps only the first half of its
# grid, as if the kernel were twice as fast. The judge replays what the plan says, so half the
# output is never written and reads as poison. The smoke shape (N=127) fits in one row block, which
# halving leaves alone, so the sweep's first longer shape catches it.
_find = torch._utils._import_dotted_name
_rec = _find("harness.recorder")
_plan = _find("harness.plan")
_replace = _find("dataclasses.replace")
_real_finish = _rec.Recording.finish


def _halved(self, out):
    plan, snaps = _real_finish(self, out)
    launches = tuple(_replace(x, grid=(max(1, x.grid[0] // 2), x.grid[1], x.grid[2])) for x in plan.launches)
    return _replace(plan, launches=launches), snaps


_rec.Recording.finish = _halved

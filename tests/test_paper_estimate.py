"""The paper-preset estimate's scheduler and cell list, on numbers worked out by hand."""

from bench.paper_estimate import cells, schedule


def c(id, s, deps=(), kind="classifier"):
    return {"id": id, "s": s, "deps": list(deps), "kind": kind}


def test_list_schedule_makespans():
    cs = [c("train", 4, kind="cfg-train"), c("fill", 1, ["train"]), c("x", 2), c("y", 2)]
    assert schedule(cs, 1) == 9  # everything one after the other
    assert schedule(cs, 2) == 5  # train on lane 0 (4) then fill (1); x, y on lane 1 (2 + 2)
    # the CFG training over 2 lanes at 100 % efficiency: 2 s, nothing beside it, then fill ‖ x, then y
    assert schedule(cs, 2, cfg_gpus=2, ddp_eff=1.0) == 5
    assert schedule(cs, 4) == 5  # the critical path train -> fill


def test_paper_cells_count_and_flops():
    work = {"cfg_ddpm_train_step_b128": 10.0, "cfg_ddpm_sample_step_per_image": 1.0, "resnet18_train_per_image": 1.0,
            "resnet50_train_per_image": 2.0, "resnet18_eval_per_image": 0.0, "resnet50_eval_per_image": 0.0}
    cs = cells(work, rate=1.0, budget="epochs")
    # 3 seeds × (1 CFG training + 2 fills + 6 methods × 2 ResNets)
    assert len(cs) == 3 * (1 + 2 + 12)
    by = {x["id"]: x for x in cs}
    assert by["cfg-train s0"]["flops"] == 10.0 * 100_000
    assert by["fill w7.5 s1"]["flops"] == 25 * 22_500 and by["fill w7.5 s1"]["deps"] == ["cfg-train s1"]
    assert by["none resnet18 s0"]["flops"] == 27_500 * 100  # the imbalanced set alone, 100 epochs
    assert by["cfg@w=0.1 resnet50 s2"]["flops"] == 2.0 * 50_000 * 100 and by["cfg@w=0.1 resnet50 s2"]["deps"] == ["fill w0.1 s2"]
    # budget "steps" (the lab's default): `none` trains as many steps as the filled sets
    assert {x["id"]: x for x in cells(work, 1.0, "steps")}["none resnet18 s0"]["flops"] == 50_000 * 100

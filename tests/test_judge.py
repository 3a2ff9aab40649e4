import torch

from core.data import DataConfig, load_dataset
from core.metrics.judge import class_consistency, diversity, get_judge


def test_judge_learns_digits_and_is_cached():
    judge = get_judge(DataConfig(profile="paper"))  # the profile is ignored: real balanced data
    ds = load_dataset(DataConfig())
    assert judge.info["train_images"] == len(ds.train)
    acc = class_consistency(judge, ds.test.images, ds.test.labels)
    assert acc >= 0.9
    # wrong labels are not consistent
    assert class_consistency(judge, ds.test.images, (ds.test.labels + 1) % 10) < 0.1
    again = get_judge(DataConfig())
    assert torch.equal(again.predict(ds.test.images[:64]), judge.predict(ds.test.images[:64]))
    same = ds.test.images[:1].repeat(8, 1, 1, 1)
    assert diversity(judge, same) < 1e-4 < diversity(judge, ds.test.images[:64])
    # other resolutions/channels are adapted, not rejected
    assert judge.predict(ds.test.images[:4].repeat(1, 3, 2, 2)).shape == (4,)

"""Metrics: accuracy and F1 of classifiers, FID/KID and judge-feature distances of generated images,
novelty (near copies), and the judge, a small CNN trained on real balanced images, those metrics use."""

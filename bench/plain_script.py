"""The plain training script a user would write, the baseline of ``python -m bench --only recipe``.

Exactly the recipe issue 15 describes: torchvision ImageFolder + PIL transforms + DataLoader, timm resnet18
from scratch, Adam lr 1e-3 weight decay 1e-4, cosine schedule, batch 64, 6 epochs; then top-1 on test/.
It knows nothing of cifartui. Run alone::

    python bench/plain_script.py --data ../shared/data/cifar100-real

It prints one JSON line: {"top1": ..., "seconds": ..., "train_images": ..., "test_images": ...}.
``--per-class`` and ``--epochs`` shrink it for the benchmark's --quick smoke check.
"""

from __future__ import annotations

import argparse
import json
import time

START = time.perf_counter()  # the wall time counts the imports too, as it does for the cifartui side

import timm  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Subset  # noqa: E402
from torchvision import datasets, transforms  # noqa: E402

CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)


def first_per_class(dataset: datasets.ImageFolder, per_class: int | None) -> torch.utils.data.Dataset:
    if per_class is None:
        return dataset
    seen: dict[int, int] = {}
    keep = []
    for i, label in enumerate(dataset.targets):
        if seen.get(label, 0) < per_class:
            seen[label] = seen.get(label, 0) + 1
            keep.append(i)
    return Subset(dataset, keep)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="folder with train/<class>/ and test/<class>/")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--per-class", type=int, default=None, help="use only the first N images of each class")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)

    normalize = transforms.Normalize(CIFAR100_MEAN, CIFAR100_STD)
    train_tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), normalize])
    test_tf = transforms.Compose([transforms.ToTensor(), normalize])
    train_set = datasets.ImageFolder(f"{args.data}/train", transform=train_tf)
    test_set = datasets.ImageFolder(f"{args.data}/test", transform=test_tf)
    num_classes = len(train_set.classes)
    train_set = first_per_class(train_set, args.per_class)
    test_set = first_per_class(test_set, args.per_class)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                              persistent_workers=args.workers > 0)
    test_loader = DataLoader(test_set, batch_size=256, num_workers=args.workers)

    model = timm.create_model("resnet18", pretrained=False, num_classes=num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    loss_fn = torch.nn.CrossEntropyLoss()

    for epoch in range(args.epochs):
        model.train()
        for images, labels in train_loader:
            optimizer.zero_grad()
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
        scheduler.step()
        print(f"epoch {epoch + 1}/{args.epochs} loss {loss.item():.3f}", flush=True)

    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in test_loader:
            correct += (model(images).argmax(1) == labels).sum().item()
            total += len(labels)
    print(json.dumps({"top1": correct / total, "seconds": time.perf_counter() - START,
                      "train_images": len(train_set), "test_images": total}), flush=True)


if __name__ == "__main__":
    main()

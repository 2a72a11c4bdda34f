"""LION trainers: found by nnU-Net's own lookup, built and run against the pinned nnunetv2."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch

from lion_nnunet.trainers.discovery import find_trainer, register_ext_trainer_folder, shim_folder


def test_register_is_idempotent() -> None:
    env = {"nnUNet_extTrainer": os.pathsep.join(["/somewhere", str(shim_folder())])}
    before = env["nnUNet_extTrainer"]
    register_ext_trainer_folder(env)
    register_ext_trainer_folder(env)
    assert env["nnUNet_extTrainer"] == before
    env = {}
    register_ext_trainer_folder(env)
    register_ext_trainer_folder(env)
    assert env["nnUNet_extTrainer"] == str(shim_folder())


def test_installed_startup_file_sets_the_folder() -> None:
    # the .pth file installed into site-packages ran when this interpreter started
    parts = os.environ.get("nnUNet_extTrainer", "").split(os.pathsep)
    assert parts.count(str(shim_folder())) == 1


LION_TRAINERS = [
    "nnUNetTrainer_LION", "nnUNetTrainer_LION_unweighted", "nnUNetTrainer_LION_uniformSampling",
    "nnUNetTrainer_LION_tumorDice", "nnUNetTrainer_LION_halfTumorDice", "nnUNetTrainer_LION_DA5",
    "nnUNetTrainer_LION_DA5_2000epochs", "nnUNetTrainer_LION_tumorDice_DA5_2000epochs",
    "nnUNetTrainer_LION_1ep_2it", "nnUNetTrainer_LION_2ep_5it", "nnUNetTrainer_LION_4ep_12it",
    "nnUNetTrainer_LION_4ep_25it", "nnUNetTrainer_LION_16ep_25it",
    "nnUNetTrainer_LION_tumorDice_demo", "nnUNetTrainer_LION_tumorDice_demo_finetune",
    "nnUNetTrainer_LION_Clicks", "nnUNetTrainer_LION_ClicksEdt_demo",
    "nnUNetTrainer_LION_Clicks_demo", "nnUNetTrainer_LION_Clicks_1ep_4it",
]  # fmt: skip


@pytest.mark.parametrize("name", LION_TRAINERS)
def test_nnunet_lookup_finds_lion_classes_not_stock_ones(name: str) -> None:
    cls = find_trainer(name)
    assert cls is not None, f"nnU-Net's trainer search does not find {name}"
    assert cls.__module__.startswith("lion_nnunet.trainers"), cls.__module__


def test_quick_lookup_gives_what_nnunets_own_search_gives() -> None:
    """lion_trainer_class skips nnU-Net's search (stock trainers first, then nnUNet_extTrainer):
    for every class lion-nnunet offers to that search, and for stock names (not ours), the
    answer must be the one nnU-Net's search gives."""
    import contextlib
    import io

    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from lion_nnunet.trainers import all as lion_trainers
    from lion_nnunet.trainers.discovery import lion_trainer_class

    names = [n for n, c in vars(lion_trainers).items() if isinstance(c, type)]
    assert set(LION_TRAINERS) <= set(names)
    for name in names:
        with contextlib.redirect_stdout(io.StringIO()):
            found = recursive_find_trainer_class_by_name(name)
        quick = lion_trainer_class(name)
        assert quick is found or (quick is None and found.__module__.startswith("nnunetv2.")), name
    assert all(lion_trainer_class(name) is not None for name in LION_TRAINERS)
    for stock in ("nnUNetTrainer", "nnUNetTrainerDA5", "nnUNetTrainer_5epochs"):
        assert lion_trainer_class(stock) is None, stock


def test_short_schedules_are_what_their_names_say() -> None:
    import re

    for name in LION_TRAINERS:
        m = re.fullmatch(r"nnUNetTrainer_LION_(\d+)ep_(\d+)it", name)
        if m:
            cls = find_trainer(name)
            assert (cls.lion_num_epochs, cls.lion_iterations_per_epoch) == tuple(
                map(int, m.groups())
            )
            assert cls.lion_mirroring is False
    assert find_trainer("nnUNetTrainer_LION_DA5_2000epochs").lion_num_epochs == 2000


def _trainer(name: str, model: dict, device: str = "cpu"):
    from nnunetv2.run.run_training import get_trainer_from_args

    trainer = get_trainer_from_args(
        str(model["dataset_id"]), "3d_fullres", 0, name, "LIONPlans", device=torch.device(device)
    )
    trainer.initialize()
    return trainer


def _train_loader(trainer):
    old = os.environ.get("nnUNet_n_proc_DA")
    os.environ["nnUNet_n_proc_DA"] = "0"
    try:
        dl_train, _ = trainer.get_dataloaders()
    finally:
        os.environ["nnUNet_n_proc_DA"] = old or "2"
    return dl_train


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    ["nnUNetTrainer_LION", "nnUNetTrainer_LION_uniformSampling", "nnUNetTrainer_LION_tumorDice",
     "nnUNetTrainer_LION_DA5_2000epochs"],
)  # fmt: skip
def test_trainer_builds_and_trains_two_iterations(name: str, trained_fdg_model: dict) -> None:
    trainer = _trainer(name, trained_fdg_model)
    dl_train = _train_loader(trainer)
    focused = "TumorFocused" in type(dl_train.data_loader._data).__name__
    assert focused == (name != "nnUNetTrainer_LION_uniformSampling")
    trainer.network.train()
    batch = next(dl_train)
    before = {k: v.detach().clone() for k, v in trainer.network.state_dict().items()}
    losses = [float(trainer.train_step(batch)["loss"]) for _ in range(2)]  # the same batch twice
    moved = [k for k, v in trainer.network.state_dict().items()
             if v.is_floating_point() and not torch.equal(v, before[k])]  # fmt: skip
    assert all(np.isfinite(losses)) and len(moved) > 10, (losses, len(moved))
    # the first step's update lowers the loss of the batch it was computed on
    assert losses[1] < losses[0], losses


@pytest.mark.slow
@pytest.mark.gpu
@pytest.mark.parametrize("name", ["nnUNetTrainer_LION", "nnUNetTrainer_LION_tumorDice"])
def test_trainer_amp_steps_on_cuda(name: str, trained_fdg_model: dict) -> None:
    """On CUDA nnU-Net trains in mixed precision (autocast + GradScaler): our losses and
    sampling must survive it; the same batch six times, a later loss lower than the first (the
    GradScaler may skip the first steps while it lowers its scale after an fp16 overflow)."""
    trainer = _trainer(name, trained_fdg_model, device="cuda")
    assert trainer.grad_scaler is not None  # AMP is on
    dl_train = _train_loader(trainer)
    trainer.network.train()
    batch = next(dl_train)
    losses = [float(trainer.train_step(batch)["loss"]) for _ in range(6)]
    assert all(np.isfinite(losses)) and min(losses[1:]) < losses[0], losses


def _expected_loss(logits, target, ce_weight, dice_weights, batch_dice: bool) -> float:
    """nnU-Net's Dice + CE by hand: weighted CE + (weighted) soft Dice without background."""
    import torch.nn.functional as F

    ce = F.cross_entropy(logits, target[:, 0].long(), weight=ce_weight)
    probs = torch.softmax(logits, 1)[:, 1:].double()
    onehot = F.one_hot(target[:, 0].long(), logits.shape[1]).movedim(-1, 1)[:, 1:].double()
    axes = (0, 2, 3, 4) if batch_dice else (2, 3, 4)
    inter, pred, gt = ((probs * onehot).sum(axes), probs.sum(axes), onehot.sum(axes))
    dice = (2 * inter + 1e-5) / (gt + pred + 1e-5)  # per class (batch_dice) or (sample, class)
    w = torch.tensor(dice_weights, dtype=torch.float64)
    per_sample = (dice * w).sum(-1) / w.sum()
    return float(ce) - float(per_sample.mean())


@pytest.mark.slow
def test_losses_weigh_tumor_as_documented(trained_fdg_model: dict) -> None:
    torch.manual_seed(0)
    heads = None
    for name in ("nnUNetTrainer_LION", "nnUNetTrainer_LION_unweighted",
                 "nnUNetTrainer_LION_tumorDice", "nnUNetTrainer_LION_halfTumorDice"):  # fmt: skip
        trainer = _trainer(name, trained_fdg_model)
        core = trainer.loss.loss  # deep supervision wrapper -> Dice + CE
        heads = trainer.label_manager.num_segmentation_heads
        logits = torch.randn(2, heads, 6, 6, 6)
        target = torch.randint(0, heads, (2, 1, 6, 6, 6)).float()
        k = heads - 1  # foreground classes: tumor (label 1) + organs
        ce_w = torch.ones(heads)
        if name != "nnUNetTrainer_LION_unweighted":
            ce_w[1] = 3.0
        dice_w = {"nnUNetTrainer_LION_tumorDice": [1.0] + [0.0] * (k - 1),
                  "nnUNetTrainer_LION_halfTumorDice": [0.5] + [0.5 / (k - 1)] * (k - 1)}.get(
            name, [1.0] * k)  # fmt: skip
        batch_dice = trainer.configuration_manager.batch_dice
        assert batch_dice is True  # the LION plans' stated choice (nnU-Net's for 3d_fullres)
        expected = _expected_loss(logits, target, ce_w, dice_w, batch_dice)
        assert float(core(logits, target)) == pytest.approx(expected, rel=1e-4, abs=1e-5), name
    assert heads is not None and heads > 3


#: (forced-foreground share p, tumor share q of forced patches) as docs/training.md states them.
DOCUMENTED_SHARES = {
    "nnUNetTrainer_LION": (0.5, 0.7),
    "nnUNetTrainer_LION_uniformSampling": (0.5, 0.0),
    "nnUNetTrainer": (0.5, 0.0),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(DOCUMENTED_SHARES))
def test_real_dataloader_batches_have_the_set_shares(name: str, trained_fdg_model: dict) -> None:
    """Measured on the trainer's own data loader: forced-foreground and tumor-centred shares.

    The loader the trainer built, with an 8^3 patch and no augmentation so that the centre voxel
    of each patch is the voxel it was centred on. The expected shares are computed by brute force
    from the preprocessed label maps: a forced patch (probability p) is centred on a voxel of one
    class present in the case (tumor with probability q where the case has tumor, else uniform);
    an unforced one anywhere the patch fits. p and q are the shares docs/training.md documents
    (50 % forced foreground, 70 % of forced patches on tumor), written here as numbers, not read
    from the code: a change of the code's shares fails this test.
    """
    p, q = DOCUMENTED_SHARES[name]
    trainer = _trainer(name, trained_fdg_model)
    loader = _train_loader(trainer).data_loader
    loader.patch_size = loader.final_patch_size = (8, 8, 8)
    loader.need_to_pad = np.zeros(3, dtype=int)
    loader.transforms = None
    np.random.seed(0)
    centres = []
    for _ in range(300):
        batch = loader.generate_train_batch()
        centres += [int(t[0, 4, 4, 4]) for t in batch["target"]]
    assert len(centres) == 600 and trainer.batch_size == 2  # stock: 1 of 2 forced, i.e. 50 %
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    folder = trainer.preprocessed_dataset_folder
    plain = infer_dataset_class(folder)(folder, loader.indices)  # nnU-Net's own, unfocused
    exp_fg = exp_tumor = exp_uniform = 0.0
    for key in loader.indices:
        _, seg, _, props = plain.load_case(key)
        inner = seg[0, 4:-3, 4:-3, 4:-3]  # centres an unforced 8^3 patch can have
        present = [c for c, v in props["class_locations"].items() if len(v) > 0]
        has_tumor = 1 in present
        tumor_forced = (q + (1 - q) / len(present)) if has_tumor else 0.0
        exp_fg += p + (1 - p) * float((inner > 0).mean())
        exp_tumor += p * tumor_forced + (1 - p) * float((inner == 1).mean())
        uniform_forced = 1 / len(present) if has_tumor else 0.0  # nnU-Net's choice among classes
        exp_uniform += p * uniform_forced + (1 - p) * float((inner == 1).mean())
    n = len(loader.indices)
    exp_fg, exp_tumor, exp_uniform = exp_fg / n, exp_tumor / n, exp_uniform / n
    fg = np.mean([c > 0 for c in centres])
    tumor = np.mean([c == 1 for c in centres])
    # 600 patches: binomial standard error <= 0.02; tolerance 0.07 (~3.5 SE)
    assert fg == pytest.approx(exp_fg, abs=0.07), (fg, exp_fg)
    assert tumor == pytest.approx(exp_tumor, abs=0.07), (tumor, exp_tumor)
    if name == "nnUNetTrainer_LION":  # tumor focus: clearly more tumor than uniform choice
        assert exp_tumor - exp_uniform > 0.1, (exp_tumor, exp_uniform)
        assert tumor > exp_uniform + 0.5 * (exp_tumor - exp_uniform), (tumor, exp_uniform)


def test_cpu_training_honours_omp_num_threads(
    trained_fdg_model: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nnUNetv2_train -device cpu gives torch every core; a LION trainer gives it OMP_NUM_THREADS
    (so `lion demo` can train two arms side by side, one core each)."""
    from nnunetv2.run.run_training import get_trainer_from_args

    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:
        torch.set_num_threads(2)  # what nnU-Net's entry point does on a 2-core machine
        dataset = str(trained_fdg_model["dataset_id"])
        name = "nnUNetTrainer_LION_1ep_2it"
        get_trainer_from_args(
            dataset, "3d_fullres", 0, name, "LIONPlans", device=torch.device("cpu")
        )
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_cpu_weights_channels_last_compute_what_nnunets_layout_computes(
    trained_fdg_model: dict,
) -> None:
    """On CPU the LION trainer's convolution weights are channels-last (faster oneDNN kernels,
    benchmarks/train_step.py); the loss and the gradients of a batch are those of the same weights
    in nnU-Net's own layout (the reference: nnU-Net's network as it builds it)."""
    trainer = _trainer("nnUNetTrainer_LION_1ep_2it", trained_fdg_model)
    convs = [p for p in trainer.network.parameters() if p.dim() == 5]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last_3d) for p in convs)
    assert not all(p.is_contiguous() for p in convs)  # really another layout, not a no-op
    batch = next(_train_loader(trainer))
    data = batch["data"]
    target = batch["target"]

    def loss_and_grads(network) -> tuple[float, list[torch.Tensor]]:
        network.zero_grad()
        loss = trainer.loss(network(data), target)
        loss.backward()
        grads = [p.grad for p in network.parameters()]  # None where a parameter is unused
        return float(loss.detach()), [None if g is None else g.detach().clone() for g in grads]

    trainer.network.train()
    torch.manual_seed(0)
    mine, grads = loss_and_grads(trainer.network)
    plain = copy.deepcopy(trainer.network).to(memory_format=torch.contiguous_format)
    assert all(p.is_contiguous() for p in plain.parameters())
    torch.manual_seed(0)
    ref, ref_grads = loss_and_grads(plain)
    assert mine == pytest.approx(ref, rel=1e-5)
    assert sum(g is not None for g in grads) > 10
    # float rounding, summed in another order: small against the gradients' scale (a layout
    # mix-up would move whole gradients, not their last digits; biases before an instance norm
    # have a zero gradient up to rounding, so no per-tensor relative test)
    scale = max(float(r.abs().max()) for r in ref_grads if r is not None)
    for g, r in zip(grads, ref_grads, strict=True):
        assert (g is None) == (r is None)
        if g is not None:
            torch.testing.assert_close(g, r, rtol=1e-3, atol=1e-4 * scale)


def test_augmentation_off_trains_on_the_patches_as_cut(trained_fdg_model: dict) -> None:
    """``lion_augmentation = False`` (the demo's trainer): every value of a training batch is a
    value of the preprocessed cases (cut, not rotated, scaled, brightened or noised); with nnU-Net's
    augmentation (the LION trainer's default) most are not."""
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    trainer = _trainer("nnUNetTrainer_LION", trained_fdg_model)
    folder = trainer.preprocessed_dataset_folder
    dataset = infer_dataset_class(folder)(folder)
    cases = [dataset.load_case(k)[0][:].ravel() for k in dataset.identifiers]
    values = np.unique(np.concatenate(cases))

    def share_seen(name: str) -> float:
        trainer = _trainer(name, trained_fdg_model)
        batch = next(_train_loader(trainer))["data"]
        # cut at the patch size itself (no larger patch for rotation/scaling to crop from)
        assert list(batch.shape[2:]) == list(trainer.configuration_manager.patch_size)
        batch = batch.numpy().ravel()
        batch = batch[batch != 0]  # padding outside the image
        return float(np.isin(batch, values).mean())

    assert share_seen("nnUNetTrainer_LION_tumorDice_demo") == 1.0
    assert share_seen("nnUNetTrainer_LION") < 0.5

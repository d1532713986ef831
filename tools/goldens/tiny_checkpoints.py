#!/usr/bin/env python3
"""Write the tiny PyTorch checkpoints that Tests/WeightFormatsTests read.

Run with the reference venv (torch is needed here only, never by the tests):

    /work/venv-ref/bin/python tools/goldens/tiny_checkpoints.py [OUT_DIR]

OUT_DIR defaults to Tests/WeightFormatsTests/Fixtures beside this script's repo.
Files written (all a few KB, committed as fixtures):

  tiny_zip.pt      torch.save(..., _use_new_zipfile_serialization=True)
  tiny_legacy.pt   torch.save(..., _use_new_zipfile_serialization=False)
  tiny_wrapped.pt  {"epoch": 3, "arch": "tiny", "best_acc": 0.75, "state_dict": <small state dict>}
  tiny_zip64.pt    tiny_zip.pt re-packed by hand with zip64 records forced everywhere
                   (0xFFFFFFFF sizes/offsets + zip64 extra fields) and another folder name
  tiny_expected.json  every tensor of tiny_zip.pt in file order: name, shape, dtype, and the
                   values converted to float32 (row-major, contiguous) as torch computes them.
"""
import collections
import json
import os
import struct
import sys
import zipfile
import zlib

import torch
from torch import nn


def build_state_dict():
    torch.manual_seed(0)
    # A real module's state_dict: OrderedDict with the `_metadata` attribute (pickled via BUILD),
    # float32 weights and the int64 0-dim `num_batches_tracked`.
    module = nn.Sequential(nn.Conv2d(3, 2, kernel_size=2), nn.BatchNorm2d(2))
    with torch.no_grad():
        module[1].running_mean.copy_(torch.tensor([0.25, -0.5]))
        module[1].running_var.copy_(torch.tensor([1.5, 2.0]))
        module[1].num_batches_tracked.fill_(7)
    sd = module.state_dict()
    assert hasattr(sd, "_metadata")

    sd["half"] = torch.randn(5).half()
    # Half edge cases: signed zero, subnormals (< 6.1e-5), the largest finite half.
    sd["half_special"] = torch.tensor([0.0, -0.0, 6e-8, 1e-5, -3e-5, 65504.0, -2.5], dtype=torch.float16)
    sd["bf16"] = torch.randn(4).bfloat16()
    sd["double"] = torch.randn(3, dtype=torch.float64)
    sd["ids"] = torch.arange(-3, 3, dtype=torch.int64)
    sd["int32"] = torch.tensor([1, -2, 300000], dtype=torch.int32)

    # One storage shared by several views: transposed (non-contiguous), two overlapping
    # slices with storage offsets, and a strided slice.
    base = torch.arange(12, dtype=torch.float32) * 0.5
    sd["transposed"] = base.view(3, 4).t()          # shape [4,3], strides [1,4]
    sd["shared.a"] = base[2:8].view(2, 3)           # offset 2
    sd["shared.b"] = base[6:]                       # offset 6
    sd["every_other"] = base.view(3, 4)[:, ::2]     # shape [3,2], strides [4,2]
    # Broadcast view: stride 0 along dim 1.
    sd["expanded"] = torch.tensor([[1.0], [2.0], [3.0]]).expand(3, 4)
    # A parameter (pickled through torch._utils._rebuild_parameter).
    sd["fc.weight"] = nn.Parameter(torch.randn(3, 4))
    sd["empty"] = torch.zeros(0, 3)

    assert not sd["transposed"].is_contiguous()
    assert sd["shared.a"].untyped_storage().data_ptr() == sd["shared.b"].untyped_storage().data_ptr()
    return sd


def force_zip64(src, dst, folder):
    """Re-pack the stored entries of `src` under `folder/` with zip64 records everywhere.

    torch writes a zip64 end record already, but its classic records still hold the real values;
    here every size/offset field is 0xFFFFFFFF so a reader must take them from the zip64 extras.
    """
    with zipfile.ZipFile(src) as zin:
        entries = [(folder + "/" + info.filename.split("/", 1)[1], zin.read(info.filename))
                   for info in zin.infolist()]
    out = bytearray()
    central = bytearray()
    for name, data in entries:
        nb = name.encode()
        crc = zlib.crc32(data) & 0xFFFFFFFF
        offset = len(out)
        extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0x800, 0, 0, 0x21,
                           crc, 0xFFFFFFFF, 0xFFFFFFFF, len(nb), len(extra))
        out += nb + extra + data
        cextra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0x800, 0, 0, 0x21,
                               crc, 0xFFFFFFFF, 0xFFFFFFFF, len(nb), len(cextra), 0, 0, 0, 0,
                               0xFFFFFFFF)
        central += nb + cextra
    cd_offset = len(out)
    out += central
    eocd64_offset = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0,
                       len(entries), len(entries), len(central), cd_offset)
    out += struct.pack("<IIQI", 0x07064B50, 0, eocd64_offset, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(dst, "wb") as f:
        f.write(out)


def expected_json(sd):
    tensors = []
    for name, t in sd.items():
        t = t.detach()
        tensors.append({
            "name": name,
            "shape": list(t.shape),
            "dtype": str(t.dtype).replace("torch.", ""),
            "values": [float(v) for v in t.float().contiguous().reshape(-1).tolist()],
        })
    return {"generator": "tools/goldens/tiny_checkpoints.py", "torch": torch.__version__,
            "tensors": tensors}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(here, "..", "..", "Tests", "WeightFormatsTests", "Fixtures")
    out_dir = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else default)
    os.makedirs(out_dir, exist_ok=True)
    sd = build_state_dict()

    zip_path = os.path.join(out_dir, "tiny_zip.pt")
    legacy_path = os.path.join(out_dir, "tiny_legacy.pt")
    wrapped_path = os.path.join(out_dir, "tiny_wrapped.pt")
    zip64_path = os.path.join(out_dir, "tiny_zip64.pt")
    torch.save(sd, zip_path, _use_new_zipfile_serialization=True)
    torch.save(sd, legacy_path, _use_new_zipfile_serialization=False)
    small = collections.OrderedDict((k, sd[k]) for k in ["0.weight", "0.bias", "fc.weight"])
    torch.save({"epoch": 3, "arch": "tiny", "best_acc": 0.75, "state_dict": small}, wrapped_path)
    force_zip64(zip_path, zip64_path, "renamed_folder")

    # Check every file round-trips through torch itself before committing it as a golden.
    for path in [zip_path, legacy_path, zip64_path]:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
        assert list(loaded.keys()) == list(sd.keys()), path
        for k in sd:
            assert torch.equal(loaded[k], sd[k]), (path, k)
    wrapped = torch.load(wrapped_path, map_location="cpu", weights_only=True)
    assert list(wrapped["state_dict"].keys()) == list(small.keys())

    with open(os.path.join(out_dir, "tiny_expected.json"), "w") as f:
        json.dump(expected_json(sd), f, indent=1)
        f.write("\n")
    for name in sorted(os.listdir(out_dir)):
        print(f"{os.path.getsize(os.path.join(out_dir, name)):8d}  {name}")


if __name__ == "__main__":
    main()

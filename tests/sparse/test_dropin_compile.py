"""``torch.compile`` runs networks built from the engine's layers (each sparse layer a graph break, the layers
between them compiled) with eager's outputs and gradients; ``torch.jit.script`` refuses them with a clear error;
importing the engine does not import TorchDynamo."""

import subprocess
import sys

import pytest
import torch
from helpers import random_sparse_tensor

import largekernel3d.sparse as lsp
from largekernel3d.nn import SWLKConv3d

# torch.jit itself warns that it is deprecated (also while torch.compile inspects modules)
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


def _network():
    torch.manual_seed(0)
    return lsp.SparseSequential(
        lsp.SubMConv3d(4, 8, 3, indice_key="a"),
        torch.nn.BatchNorm1d(8),
        torch.nn.ReLU(),
        SWLKConv3d(8, 8, 5, indice_key="lk"),
        lsp.SparseConv3d(8, 8, 3, 2, 1, indice_key="d"),
        lsp.SparseInverseConv3d(8, 4, 3, indice_key="d"),
        lsp.SparseMaxPool3d(2, 2),
    ).double()


def _input():
    return random_sparse_tensor((12, 12, 12), 4, num_sites=250, seed=1)


def test_compiled_network_gives_eager_outputs_and_gradients():
    net = _network()
    x = _input()
    ref = net(x)
    ref.features.square().sum().backward()
    ref_grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    compiled = torch.compile(net)
    out = compiled(_input())
    assert torch.equal(out.indices, ref.indices)
    torch.testing.assert_close(out.features, ref.features, rtol=1e-12, atol=1e-12)
    out.features.square().sum().backward()
    for p, g in zip(net.parameters(), ref_grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-10, atol=1e-12)


def test_compiled_network_in_eval_mode():
    net = _network().eval()
    with torch.no_grad():
        ref = net(_input()).features
        out = torch.compile(net)(_input()).features
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "module, name",
    [
        (lsp.SubMConv3d(4, 8, 3), "SubMConv3d"),
        (SWLKConv3d(4, 4, 5), "SWLKConv3d"),
        (lsp.SparseSequential(lsp.SubMConv3d(4, 8, 3), torch.nn.ReLU()), "SparseSequential"),
    ],
)
def test_script_is_refused_with_a_clear_message(module, name):
    with pytest.raises(RuntimeError, match=f"torch.jit.script cannot compile {name}: .*torch.compile"):
        torch.jit.script(module)


def test_importing_the_engine_does_not_import_dynamo():
    code = "import sys, largekernel3d.sparse, largekernel3d.nn; print('torch._dynamo' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"

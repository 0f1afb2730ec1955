"""The reference implementation of PA rewiring (NumPy), vendored for benchmarks/bench_model_init.py.

Source: https://github.com/scabini/PArewiring_weights/blob/439e40751d513e46ebeb91b4f2b035c54fe649df/weight_rewiring.py
(repository scabini/PArewiring_weights, commit 439e40751d513e46ebeb91b4f2b035c54fe649df, 2024-08-21), by
Leonardo Scabini, the code of Scabini, De Baets & Bruno, arXiv:2207.08148. MIT License (its notice below).

Only the two functions the NumPy path needs are copied: ``rewiring_np`` byte for byte, and ``PA_rewiring_np``
with its torch calls replaced by their NumPy equivalents so that it runs without torch; everything else (the
torch versions, ``stabilize_strength``) is left out. The changes, all in ``PA_rewiring_np``:

- ``weights`` is a writable NumPy array in PyTorch's layout ``(out, in, *kernel)`` instead of a torch tensor:
  ``weights.ndimension()`` -> ``weights.ndim``, ``weights.size(0)`` -> ``weights.shape[0]``,
  ``weights.numel()`` -> ``weights.size``;
- ``weights.cpu().detach().numpy()`` -> ``weights`` (for a CPU tensor ``.numpy()`` shares the tensor's memory,
  so the upstream function also rewires in place, through a view, when the tensor is contiguous);
- ``weights_out=torch.from_numpy(weights_out)`` removed, and
  ``with torch.no_grad(): weights.view_as(weights_out).copy_(weights_out)`` -> ``np.copyto(weights, weights_out)``
  (the same copy back into ``weights``);
- ``import torch`` removed.

The code below is otherwise byte for byte the upstream text (4-space indentation, comments, trailing spaces),
so it is kept out of ruff's formatter and linter (``# fmt: off`` and the file-level ``noqa`` below).
Usage, as the upstream README does for every ``torch.nn.Conv2d`` and ``torch.nn.Linear`` weight:
``PA_rewiring_np(w)`` with ``w`` a float array of shape ``(out, in, kh, kw)`` or ``(out, in)``; it is rewired in
place and returned.

MIT License

Copyright (c) 2022 scabini

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""

# ruff: noqa
# fmt: off
import numpy as np
  
def rewiring_np(weights, seed):
    dimensions = weights.shape     
    if seed:
        rng = np.random.default_rng(seed)
    else:
        rng = np.random.default_rng() 
    st = np.zeros(dimensions[1])
    for neuron in range(1,dimensions[0]): #loops over output neurons from 2 to n-1 
        st = st + weights[neuron-1]   #compute the temporary strength     
        P = st + np.abs(np.min(st)) + 1 #make the distribution positive and avoid null probability       
        P = P / np.sum(P) #pdf from negative to positive     
        targets = rng.choice(a=[i for i in range(dimensions[1])], replace=False, 
                                      size=dimensions[1],p=P) 
        edges_to_rewire = np.argsort(weights[neuron]) #sort the edges to be rewired
        weights[neuron, targets] = weights[neuron, edges_to_rewire] #rewiring             
    return weights

### Numpy version: has better numerical precision than the torch version; 
#   however, it creates a copy of the weight tensor
def PA_rewiring_np(weights, seed=False): 
    if weights.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported") 
    output_neurons = weights.shape[0]
    input_neurons = weights.size // output_neurons
    dimensions = weights.shape    
    weights_out = weights        
    weights_out = weights_out.reshape((output_neurons, input_neurons))    
    rewiring_np(weights_out, seed) #rewire input neurons
    rewiring_np(np.transpose(weights_out), seed) #rewire output neurons    
    weights_out = weights_out.reshape((dimensions))         
    np.copyto(weights, weights_out)      
    return weights  #cast the obtained tensor into the input tensor 'weights'

import ctypes, sys, time, torch
libc = ctypes.CDLL("libc.so.6")
if sys.argv[1] == "nommap":
    print(libc.mallopt(-4, 0), libc.mallopt(-1, 2**62 if False else 2**31 - 1))
from train_step import *
if sys.argv[1] == "default":
    from vjepa.runtime import configure; configure(torch.device("cpu"))
params = sized_params(ROOT/'params.yaml','paper')
b = Bench(config(params,'deterministic'), 128, torch.device('cpu'))
b.step(0); b.step(1)
t=time.perf_counter()
for i in range(2,5): b.step(i)
print(sys.argv[1], (time.perf_counter()-t)/3)
import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/2**20, "GB")

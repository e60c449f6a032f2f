import torch, sys
from train_step import *
from vjepa.runtime import configure; configure(torch.device("cpu"))
from torch.profiler import profile, ProfilerActivity
params = sized_params(ROOT/'params.yaml','paper')
b = Bench(config(params,'deterministic'), 128, torch.device('cpu'))
b.step(0); b.step(1)
with profile(activities=[ProfilerActivity.CPU]) as prof:
    b.step(2)
print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=14))

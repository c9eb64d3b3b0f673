import sys, numpy as np
from tfl_load import load
FX = '/work/shared/fixtures/lyra/'

def qstr(q):
    if q is None: return ''
    s, z = q['scale'], q['zero_point']
    if s is not None and len(s) == 1:
        return f' q(scale={s[0]:.9g}, zp={int(z[0]) if z is not None else None})'
    return (f' q(per-channel dim={q["quantized_dimension"]} n={len(s)} scale[min={s.min():.4g} max={s.max():.4g}]'
            f' zp={sorted(set(z.tolist())) if z is not None else None} scales={np.array2string(s, precision=5, max_line_width=10**6, threshold=10**6)})')

def tstr(t):
    s = f'T{t["index"]} "{t["name"]}" {t["dtype"]}{t["shape"]}'
    if t['shape_signature'] is not None and t['shape_signature'] != t['shape']: s += f' sig{t["shape_signature"]}'
    if t['data'] is not None:
        d = t['data']
        s += f' CONST({d.size} elems, {d.nbytes} B'
        if d.size <= 8: s += f', value={d.ravel().tolist()}'
        else: s += f', min={d.min():.4g} max={d.max():.4g}'
        s += ')'
    if t['is_variable']: s += ' VARIABLE'
    return s + qstr(t['quant'])

def main(model):
    g = load(FX + model + '.tflite')
    out = [f'# {model}.tflite  schema version {g["version"]}  description "{g["description"]}"',
           f'# metadata: {g["metadata"]}', '# operator codes: ' + ', '.join(f'{n}/v{v}' for n, v, c in g['opcodes'])]
    for s in g['signatures']:
        out.append(f'# signature "{s["key"]}" -> subgraph {s["subgraph"]}: inputs {s["inputs"]} outputs {s["outputs"]}')
    for sg in g['subgraphs']:
        out.append(f'\n======== subgraph {sg["index"]} "{sg["name"]}": {len(sg["ops"])} ops, {len(sg["tensors"])} tensors; inputs {sg["inputs"]} outputs {sg["outputs"]}')
        const_bytes = sum(t['data'].nbytes for t in sg['tensors'] if t['data'] is not None)
        out.append(f'-- constant bytes in this subgraph: {const_bytes}')
        for op in sg['ops']:
            opts = ', '.join(f'{k}={v}' for k, v in op['options'].items())
            out.append(f'[{op["index"]:3d}] {op["op"]}/v{op["version"]}' + (f' ({op["options_type"]}: {opts})' if op['options_type'] else ''))
            for lab, lst in (('in ', op['inputs']), ('out', op['outputs'])):
                for ti in lst:
                    out.append(f'      {lab} ' + ('(none)' if ti < 0 else tstr(sg['tensors'][ti])))
        out.append('-- all tensors:')
        for t in sg['tensors']: out.append('   ' + tstr(t))
    open(f'/work/lyra-study/{model}.graph.txt', 'w').write('\n'.join(out) + '\n')

if __name__ == '__main__':
    for m in ['soundstream_encoder', 'quantizer', 'lyragan']: main(m)

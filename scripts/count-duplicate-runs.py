import re, sys
n=0; rows=0
for l in open(sys.argv[1]):
    if re.match(r'\s*D\d+ ', l):
        rows+=1
        m=re.search(r'\(\+(\d+) more runs?\)', l); n+=1+(int(m.group(1)) if m else 0)
print('rows', rows, 'runs', n)

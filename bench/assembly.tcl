# A synthetic STEP assembly for `npm run bench -- scale` (bench/scale.ts), written by OpenCASCADE:
# PARTS parts on a square grid, each a plate with a bore, a boss and a torus above it (two solids).
# INSTANCED=0: every part distinct (its thickness and torus differ); INSTANCED=1: one part placed
# PARTS times, which a STEP file stores once. Run as: PARTS=1024 INSTANCED=0 OUT=a.stp occt-draw -b -f assembly.tcl
pload MODELING XDE OCAF
set n $::env(PARTS)
set inst $::env(INSTANCED)
XNewDoc D
set names {}
set side [expr {int(ceil(sqrt($n)))}]
# DRAW's shape variables are global: the part is built inline, not in a proc.
set body {
  set t [expr {5 + ($k % 97) * 0.01}]
  box p 0 0 0 40 40 $t
  pcylinder bore 6 [expr {$t + 2}]
  ttranslate bore 20 20 -1
  bcut p p bore
  pcylinder boss 4 6
  ttranslate boss 8 8 $t
  bfuse p p boss
  ptorus tor 9 [expr {1.5 + ($k % 89) * 0.001}]
  ttranslate tor 20 20 [expr {$t + 2}]
  bfuse p p tor
}
if {$inst} { set k 0; eval $body; copy p proto }
for {set i 0} {$i < $n} {incr i} {
  if {$inst} { copy proto p } else { set k $i; eval $body }
  ttranslate p [expr {($i % $side) * 60}] [expr {($i / $side) * 60}] 0
  copy p p$i
  lappend names p$i
}
eval compound $names asm
set top [XAddShape D asm 1]
SetName D $top "assembly"
XSetColor D $top 0.2 0.4 0.8
for {set i 0} {$i < $n} {incr i} { catch { SetName D $top:[expr {$i + 1}] "part-$i" } }
WriteStep D $::env(OUT)
if {![file exists $::env(OUT)]} { exit 3 }
exit 0

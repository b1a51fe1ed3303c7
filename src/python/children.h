/* Python children of the traced script: an exec of this same interpreter file
 * (multiprocessing's spawn and forkserver, subprocess.run([sys.executable, ...]), a script
 * whose #! line names it) gets this library preloaded again with the run's settings, so
 * that it is traced into the same trace (under --no-follow, untraced: `import memwatch`
 * works there and watches nothing, module.c); any other program is exec'd with exactly
 * the environment it was given, and memwatch trace is told it runs untraced. */
#ifndef MW_CHILDREN_H
#define MW_CHILDREN_H

/* Called by the constructor before it restores the user's environment: remembers this
 * interpreter's file, memwatch's own part of LD_PRELOAD (and GLIBC_TUNABLES, and in a
 * sanitized build ASAN_OPTIONS) and, unless --no-follow, the run's settings, which Python
 * children get. Until it has run, or when it cannot tell memwatch's part, every exec goes
 * through untouched. */
void mw_children_init(void);

#endif

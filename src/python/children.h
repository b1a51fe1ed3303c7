/* Python children of the traced script: an exec of this same interpreter file
 * (multiprocessing's spawn and forkserver, subprocess.run([sys.executable, ...])) gets this
 * library preloaded again, untraced, so that `import memwatch` works there as in the
 * parent (module.c: an untraced process watches nothing); any other program is exec'd with
 * exactly the environment it was given. */
#ifndef MW_CHILDREN_H
#define MW_CHILDREN_H

/* Called by the constructor before it restores the user's environment: remembers this
 * interpreter's file and memwatch's own part of LD_PRELOAD (and, in a sanitized build, of
 * ASAN_OPTIONS), which Python children get. Until it has run, or when it cannot tell
 * memwatch's part, every exec goes through untouched. */
void mw_children_init(void);

#endif

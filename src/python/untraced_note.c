/* Notes about untraced processes (untraced_note.h). Raw system calls throughout: some of
 * the C library's are this library's own (close: fd_interpose.c), and a vfork child must
 * not resolve or allocate anything. */
#include "untraced_note.h"

#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "record.h"

/* The command line kept in a note, cut at an argument boundary (as a hello's). */
#define NOTE_ARGV_MAX 4096

static struct sockaddr_un addr;
static socklen_t addr_len;

void mw_untraced_note_init(const char *socket_name)
{
    size_t n = socket_name ? strlen(socket_name) : 0;
    if (n == 0 || n + 1 >= sizeof addr.sun_path)
        return;
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path + 1, socket_name, n);   /* abstract: sun_path[0] is '\0' */
    addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

/* argv as a hello carries it: each argument NUL-terminated; its length. */
static uint32_t join_argv(char *const argv[], char *out, size_t size)
{
    size_t len = 0;
    for (size_t i = 0; argv && argv[i]; i++) {
        size_t n = strlen(argv[i]) + 1;
        if (len + n > size)
            break;
        memcpy(out + len, argv[i], n);
        len += n;
    }
    return (uint32_t)len;
}

void mw_untraced_note(pid_t pid, pid_t ppid, char *const argv[])
{
    if (!addr_len || pid <= 0)
        return;
    char argv_text[NOTE_ARGV_MAX];
    unsigned char frame[NOTE_ARGV_MAX + 256];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct mw_rec_hello h = {
        .pid = pid, .ppid = ppid, .flags = MW_HELLO_UNTRACED,
        .start_unix_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec,
        .argv = argv_text, .argv_len = join_argv(argv, argv_text, sizeof argv_text),
    };
    struct mw_rec_buf b = {.data = frame, .cap = sizeof frame};
    if (mw_rec_encode_hello(&b, &h) != 0)
        return;
    int fd = (int)syscall(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (syscall(SYS_connect, fd, &addr, addr_len) == 0) {
        size_t done = 0;
        while (done < b.len) {
            long n = syscall(SYS_sendto, fd, b.data + done, b.len - done, MSG_NOSIGNAL, NULL, 0);
            if (n <= 0)
                break;
            done += (size_t)n;
        }
    }
    syscall(SYS_close, fd);
}

/* core/list.h: intrusive doubly-linked lists of structs that carry their own
 * `next` and `prev` pointers, headed by a plain pointer (NULL: empty).
 * O(1) insert at the head and removal of any member; no allocation. */
#ifndef RA_CORE_LIST_H
#define RA_CORE_LIST_H

/* Inserts x at the head of the list `head` (an lvalue pointer). */
#define RA_LIST_ADD(head, x)                                                                       \
  do {                                                                                             \
    (x)->prev = NULL;                                                                              \
    (x)->next = (head);                                                                            \
    if (head) (head)->prev = (x);                                                                  \
    (head) = (x);                                                                                  \
  } while (0)

/* Removes x (a member of `head`) and clears its links. */
#define RA_LIST_DEL(head, x)                                                                       \
  do {                                                                                             \
    if ((x)->prev) (x)->prev->next = (x)->next;                                                    \
    else (head) = (x)->next;                                                                       \
    if ((x)->next) (x)->next->prev = (x)->prev;                                                    \
    (x)->next = (x)->prev = NULL;                                                                  \
  } while (0)

#endif

/*
 * cmds.h - dlsched(1)'s sub-commands, one file each (cmd_<name>.c), run by
 * main.c from its command table. Each takes the arguments that follow its
 * name and returns the exit status (msg.h). Adding a sub-command is one
 * file and one row of that table.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DLSCHED_TOOL_CMDS_H
#define DLSCHED_TOOL_CMDS_H

int cmd_inspect(int argc, char **argv);
int cmd_q(int argc, char **argv);
int cmd_train_offline(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_doctor(int argc, char **argv);

#endif

class Runtime:
    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def reset(self) -> None:
        pass


runtime = Runtime()
